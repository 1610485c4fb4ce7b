import XCTest
import Tensor
import TestSupport

/// LoMaR's K×K windows of the patch grid regrouped into a batch (ops/token_windows.safetensors, a
/// 4×5 grid so rows and columns cannot be swapped unnoticed, two overlapping windows per image).
/// Copies and at most two-term sums: the comparison is exact.
final class TokenWindowTests: XCTestCase {
    struct Fixture { let x: Tensor, windows: [TokenWindow], width: Int, size: Int, y: Tensor, dy: Tensor, dx: Tensor }

    func load() throws -> Fixture {
        let f = try Fixtures.file("ops/token_windows.safetensors")
        let (shape, flat) = try f.integers("windows")
        let windows = (0..<shape[0]).map { TokenWindow(image: flat[3 * $0], top: flat[3 * $0 + 1], left: flat[3 * $0 + 2]) }
        return Fixture(x: try f.tensor("x"), windows: windows, width: Int(try XCTUnwrap(f.meta("grid_width"))),
                       size: Int(try XCTUnwrap(f.meta("size"))), y: try f.tensor("y"), dy: try f.tensor("dy"), dx: try f.tensor("dx"))
    }

    func testWindowsAndTheirBackwardMatchPyTorchExactly() throws {
        let c = try load()
        XCTAssertEqual(TokenOps.windows(c.x, gridWidth: c.width, size: c.size, windows: c.windows), c.y)
        let dx = TokenOps.windowsBackward(c.dy, batch: c.x.shape[0], tokens: c.x.shape[1], gridWidth: c.width,
                                          size: c.size, windows: c.windows)
        XCTAssertEqual(dx, c.dx)
    }

    /// ⟨windows(x), y⟩ = ⟨x, windowsBackward(y)⟩ for any y: the backward is the adjoint (up to the
    /// float rounding of overlapping sums).
    func testBackwardIsTheAdjoint() throws {
        let c = try load()
        let (x, windows, width, size) = (c.x, c.windows, c.width, c.size)
        var rng = SeededRandom(seed: 7)
        let y = Tensor(shape: [windows.count, size * size, x.shape[2]], data: (0..<(windows.count * size * size * x.shape[2])).map { _ in rng.normal() })
        let forward = TokenOps.windows(x, gridWidth: width, size: size, windows: windows)
        let back = TokenOps.windowsBackward(y, batch: x.shape[0], tokens: x.shape[1], gridWidth: width, size: size, windows: windows)
        let lhs = zip(forward.data, y.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x.data, back.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-6 * max(1, abs(lhs)))
    }
}
