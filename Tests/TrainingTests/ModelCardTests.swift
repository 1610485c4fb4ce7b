import XCTest
import Foundation
@testable import Training

/// A model card is written on a training machine and read anywhere: the paths of its recipe and
/// commands that lie in the folder `export` ran from are shown relative to it.
final class ModelCardTests: XCTestCase {
    func testPathsInTheWorkingDirectoryAreShownRelative() {
        let cwd = FileManager.default.currentDirectoryPath
        let escaped = cwd.replacingOccurrences(of: "/", with: "\\/")
        let text = """
        {
          "data" : "\(escaped)\\/runs\\/photo-data",
          "other" : "\\/usr\\/share\\/datasets\\/fashion-mnist",
          "nested" : "\\/elsewhere\(escaped)\\/kept"
        }
        bootmae-train pretrain --data \(cwd)/runs/photo-data --out=\(cwd)/runs/photo/x --data '\(cwd)/my photos'
        \(cwd)/runs/at-line-start /tmp\(cwd)/kept-too \(cwd) "\(escaped)" \(cwd)-sibling/x
        """
        let expected = """
        {
          "data" : "runs\\/photo-data",
          "other" : "\\/usr\\/share\\/datasets\\/fashion-mnist",
          "nested" : "\\/elsewhere\(escaped)\\/kept"
        }
        bootmae-train pretrain --data runs/photo-data --out=runs/photo/x --data 'my photos'
        runs/at-line-start /tmp\(cwd)/kept-too . "." \(cwd)-sibling/x
        """
        XCTAssertNotEqual(cwd, "/", "the test needs a working directory that is not the root")
        XCTAssertEqual(ModelCard.relativeToWorkingDirectory(text), expected)
    }
}
