import Tensor

/// The position table of a G×G grid resized for a crop with a g×g grid, as DINO and iBOT do for
/// their local crops (bytedance/ibot models/vision_transformer.py `interpolate_pos_encoding`):
/// the [CLS] row is kept; the patch rows, seen as a (D, G, G) image, go through
/// `F.interpolate(mode='bicubic', scale_factor=(g + 0.1) / G)` (`BicubicInterpolation`). The 0.1
/// only makes ⌊G · s⌋ come out as g (facebookresearch/dino issue 8), yet PyTorch also samples with
/// that scale, so the rows read source coordinates (i + 0.5) · G / (g + 0.1) − 0.5, not the
/// G / g spacing a `size=` call would use; this follows the official call.
/// The backward is the adjoint: a crop's gradient of its table lands on the G×G table.
public struct PositionInterpolation: Sendable, Equatable {
    public let sourceGrid: Int
    public let targetGrid: Int
    let axis: BicubicInterpolation.Axis

    /// For a crop of `patches` patches (a square grid); nil on the table's own grid, where the
    /// official code adds `pos_embed` itself.
    public init?(sourceGrid: Int, patches: Int) {
        let g = Int(Double(patches).squareRoot().rounded())
        precondition(g * g == patches, "position interpolation: \(patches) patches are not a square grid")
        guard g != sourceGrid else { return nil }
        self.init(sourceGrid: sourceGrid, targetGrid: g)
    }

    public init(sourceGrid: Int, targetGrid: Int) {
        self.sourceGrid = sourceGrid
        self.targetGrid = targetGrid
        axis = BicubicInterpolation.Axis(inputSize: sourceGrid, scaleFactor: (Double(targetGrid) + 0.1) / Double(sourceGrid))
        precondition(axis.outputSize == targetGrid, "position interpolation: \(sourceGrid) → \(axis.outputSize), not \(targetGrid)")
    }

    /// (1, 1 + G², D) → (1, 1 + g², D).
    public func forward(_ table: Tensor) -> Tensor {
        Self.mapPatchRows(table, from: sourceGrid, to: targetGrid, "table") {
            BicubicInterpolation.forward($0, rows: axis, columns: axis)
        }
    }

    /// d (1, 1 + g², D) → d (1, 1 + G², D).
    public func backward(_ dTable: Tensor) -> Tensor {
        Self.mapPatchRows(dTable, from: targetGrid, to: sourceGrid, "gradient") {
            BicubicInterpolation.backward($0, rows: axis, columns: axis)
        }
    }

    /// A (1, 1 + a², D) table with its [CLS] row kept and its a×a patch rows, as an (a, a, D)
    /// image, mapped to b×b by `resize`.
    static func mapPatchRows(_ table: Tensor, from a: Int, to b: Int, _ what: String, _ resize: (Tensor) -> Tensor) -> Tensor {
        let d = table.lastDim
        precondition(table.count == (1 + a * a) * d, "position interpolation: \(what) \(table.shape) is not 1 + \(a)²")
        let resized = resize(Tensor(shape: [a, a, d], data: Array(table.data[d...])))
        return Tensor(shape: [1, 1 + b * b, d], data: Array(table.data[..<d]) + resized.data)
    }
}
