import XCTest
final class PlaceholderImageKitTests: XCTestCase { func testNothing() {} }
