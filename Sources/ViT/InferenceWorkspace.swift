import Tensor

/// The scratch buffers of the encoder's inference path, kept from one call to the next.
///
/// Every block reads and writes the same two buffers, and the residual stream is updated in
/// place, so a forward holds about six token-widths of activations however deep the model is,
/// and allocates nothing per block. Keeping them between calls matters as much: glibc hands any
/// allocation over its 32 MiB mmap threshold (the MLP activations of 16 ViT-B images are 39 MB)
/// back to the kernel when it is freed, and every call would fault it in again.
///
/// Buffers grow to the largest batch seen and never shrink. Not thread-safe: use one workspace
/// per thread that runs forwards (the server's compute thread owns one per model).
public final class InferenceWorkspace: @unchecked Sendable {
    /// LayerNorm outputs: rows × dim.
    private let normed = GrowingBuffer()
    /// Attention's q | k | v and context, and later the MLP's hidden activations: a block never
    /// needs both at once.
    private let wide = GrowingBuffer()
    /// Relative-position attention biases and their lookups (LoMaR's iRPE); never grown without one.
    private let relative = GrowingBuffer()

    /// One workspace per shard when a batch is split by images over the workers.
    private var shardSpaces: [InferenceWorkspace] = []

    public init() {}

    /// Bytes currently held.
    public var byteCount: Int { 4 * (normed.capacity + wide.capacity + relative.capacity) + shardSpaces.reduce(0) { $0 + $1.byteCount } }

    /// `count` workspaces for the shards of one forward, kept for the next.
    func shards(_ count: Int) -> [InferenceWorkspace] {
        while shardSpaces.count < count { shardSpaces.append(InferenceWorkspace()) }
        return Array(shardSpaces.prefix(count))
    }

    func normalized(rows: Int, width: Int) -> UnsafeMutablePointer<Float> {
        normed.reserve(rows * width)
    }

    /// (qkv: rows × 3·width, context: rows × width), side by side.
    func attention(rows: Int, width: Int) -> (qkv: UnsafeMutablePointer<Float>, context: UnsafeMutablePointer<Float>) {
        let base = wide.reserve(rows * 4 * width)
        return (base, base + rows * 3 * width)
    }

    /// (bias: `bias` floats, lookup: `lookup` floats), side by side, apart from the other buffers.
    func relativeBias(bias: Int, lookup: Int) -> (bias: UnsafeMutablePointer<Float>, lookup: UnsafeMutablePointer<Float>) {
        let base = relative.reserve(bias + lookup)
        return (base, base + bias)
    }

    /// rows × hidden, overlapping `attention`'s buffers.
    func hidden(rows: Int, width: Int) -> UnsafeMutablePointer<Float> {
        wide.reserve(rows * width)
    }
}

/// Float storage that is reallocated only to grow (its contents are scratch, never copied).
final class GrowingBuffer {
    private(set) var capacity = 0
    private var storage: UnsafeMutablePointer<Float>?

    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if let storage, count <= capacity { return storage }
        storage?.deallocate()
        let grown = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        storage = grown
        capacity = max(count, 1)
        return grown
    }

    deinit { storage?.deallocate() }
}

/// How a batched inference forward uses several workers.
public enum InferenceSplit: Sendable {
    /// Every op splits its own work (GEMM rows, attention heads, elementwise chunks) over the
    /// workers: a fork and join per op. The only choice for one image.
    case byOperation
    /// Each worker runs whole images with single-threaded kernels: one join per forward.
    case byImage

    /// The process-wide choice; set at start-up (servers, benchmarks), not while forwards run.
    /// By image: on a quiet 2-core machine it won at both ends of the model range (tiny ViT b8
    /// 262 vs 191 img/s, ViT-B/16 b8 6.0 vs 5.9; docs/PERFORMANCE.md). On a machine whose cores are
    /// busy with other work it loses (a late shard stalls the batch); `.byOperation` suits that.
    nonisolated(unsafe) public static var current: InferenceSplit = .byImage

    /// The names flags use: "image" and "operation"; nil for anything else.
    public init?(name: String) {
        switch name {
        case "image": self = .byImage
        case "operation": self = .byOperation
        default: return nil
        }
    }
}
