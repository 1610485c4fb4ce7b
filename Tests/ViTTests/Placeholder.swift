import XCTest
final class PlaceholderViTTests: XCTestCase { func testNothing() {} }
