import Tensor

/// One LoMaR step's random choices: the window rows the encoder runs on (which image, which K×K
/// window) and, per row, which of the K² window patches are masked. The row order is the order the
/// official code lays its rows out in (and the loss sums in).
public struct LoMaRPlan: ShardablePlan, Equatable {
    /// Images of the batch this plan was drawn for.
    public let batch: Int
    public let size: Int
    public let windows: [TokenWindow]
    /// Per row, K² flags in the window's row-major order: true = masked.
    public let masks: [[Bool]]

    public init(batch: Int, size: Int, windows: [TokenWindow], masks: [[Bool]]) {
        precondition(windows.count == masks.count && masks.allSatisfy { $0.count == size * size },
                     "LoMaR plan: \(windows.count) windows, \(masks.count) masks of K² = \(size * size)")
        precondition(batch > 0 && windows.count % batch == 0, "LoMaR plan: \(windows.count) rows for \(batch) images")
        self.batch = batch; self.size = size; self.windows = windows; self.masks = masks
    }

    /// Rows per image (every image has the same number under both pairings).
    public var windowsPerImage: Int { windows.count / batch }
    /// Masked patches per row.
    public var maskedPerWindow: Int { masks.first.map { $0.filter { $0 }.count } ?? 0 }
    /// Every row's flags, row-major: `TokenOps.replaceMasked`'s and the loss's layout.
    public var maskFlags: [Bool] { masks.flatMap { $0 } }

    /// The rows of images `images`, renumbered from 0, in the same order.
    public func shard(_ images: Range<Int>) -> LoMaRPlan {
        if images == 0..<batch { return self }
        let rows = windows.indices.filter { images.contains(windows[$0].image) }
        return LoMaRPlan(batch: images.count, size: size,
                         windows: rows.map { TokenWindow(image: windows[$0].image - images.lowerBound, top: windows[$0].top, left: windows[$0].left) },
                         masks: rows.map { masks[$0] })
    }
}

/// Which windows each image gets. The official code draws M windows per step for the whole batch
/// (`tops = randperm(H−K+1)[:M]`, `lefts = randperm(W−K+1)[:M]`) and then pairs row r with image
/// r mod N but window r mod M (features repeated window-major, window indices expanded image-major:
/// junchen14/LoMaR models_lomar.py `generate_window_patches`), so when N is a multiple of M every
/// image gets one window M times, each with its own mask.
public enum WindowPairing: String, Codable, Sendable, CaseIterable {
    /// What `num_window` means: every image gets all M windows (image-major rows).
    case distinct
    /// The official code's rows, for parity: row r = (image r mod N, window r mod M).
    case official
}

extension LoMaRPlan {
    /// Windows per image a draw of `count` K×K windows gives on a grid: as many as there are top
    /// (and left) positions, grid − K + 1, at most (the official `randperm(positions)[:M]`).
    public static func windowCount(grid: Int, size k: Int, count m: Int) -> Int { min(m, grid - k + 1) }

    /// Draws the step's windows (shared by the batch, as the official code) and an independent mask
    /// of `masked` patches for every row, each by sorting uniform noise (torch's `argsort(rand)`).
    /// Fewer than `count` windows exist when the grid has fewer positions (the official `[:M]`).
    public static func draw(batch: Int, grid: Int, size k: Int, count m: Int, masked: Int, pairing: WindowPairing,
                            rng: inout SeededRandom) -> LoMaRPlan {
        precondition(k >= 1 && k <= grid && m >= 1 && (1..<(k * k)).contains(masked),
                     "LoMaR: window \(k) in a grid of \(grid), \(m) windows, \(masked) masked")
        func permutation(_ n: Int) -> [Int] {
            let noise = (0..<n).map { _ in rng.uniform() }
            return (0..<n).sorted { noise[$0] < noise[$1] }
        }
        let positions = grid - k + 1, n = windowCount(grid: grid, size: k, count: m)
        let tops = Array(permutation(positions).prefix(n)), lefts = Array(permutation(positions).prefix(n))
        let rows: [(image: Int, window: Int)] = switch pairing {
        case .distinct: (0..<batch).flatMap { image in (0..<n).map { (image, $0) } }
        case .official: (0..<(batch * n)).map { ($0 % batch, $0 % n) }
        }
        let windows = rows.map { TokenWindow(image: $0.image, top: tops[$0.window], left: lefts[$0.window]) }
        let masks = rows.map { _ -> [Bool] in
            var flags = [Bool](repeating: false, count: k * k)
            for p in permutation(k * k).prefix(masked) { flags[p] = true }
            return flags
        }
        return LoMaRPlan(batch: batch, size: k, windows: windows, masks: masks)
    }
}
