/// How the processes of a data-parallel job share what their shards of a batch computed. A job
/// of one process is the identity (`SingleProcess`); `bootmae-train` under `mpirun` uses Open MPI
/// (`MPICollective` in the Distributed target), one shard of every batch per rank.
///
/// Every rank calls the same operations in the same order. Sums are **order-preserving**: the
/// result equals adding the ranks' values left to right in rank order, the sum `DataParallel`
/// forms of its shards inside one process, so N ranks train bit for bit like one process with N
/// shards. A failed operation (a rank died) ends the job with a message; callers never see it.
public protocol Collective: AnyObject, Sendable {
    /// This process's index, 0..<size; rank 0 writes the run folder.
    var rank: Int { get }
    /// Processes in the job.
    var size: Int { get }
    /// Replaces `buffer` (the same count on every rank) by ((b₀ + b₁) + b₂) + … on every rank.
    func sumInRankOrder(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// Every rank's `values` (the same count on every rank), in rank order.
    func gather(_ values: [Float]) -> [[Float]]
    /// Rank `root`'s `buffer` on every rank (the same byte count on every rank).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int)
    /// True on every rank when `flag` is true on any rank.
    func any(_ flag: Bool) -> Bool
}

extension Collective {
    public var isRoot: Bool { rank == 0 }
    public var isDistributed: Bool { size > 1 }

    /// Rank 0's bytes on every rank (`data` is only read on rank 0).
    public func broadcast(_ data: [UInt8]) -> [UInt8] {
        var count = [Int64(data.count)]
        count.withUnsafeMutableBytes { broadcast($0, from: 0) }
        var bytes = rank == 0 ? data : [UInt8](repeating: 0, count: Int(count[0]))
        bytes.withUnsafeMutableBytes { broadcast($0, from: 0) }
        return bytes
    }

    /// Rank 0's floats in `values` on every rank (the same count on every rank).
    public func broadcast(_ values: UnsafeMutableBufferPointer<Float>) {
        broadcast(UnsafeMutableRawBufferPointer(values), from: 0)
    }
}

/// A job of one process: every operation is the identity.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sumInRankOrder(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func gather(_ values: [Float]) -> [[Float]] { [values] }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) {}
    public func any(_ flag: Bool) -> Bool { flag }
}

/// What a shard's step returns, as the floats a distributed job exchanges: each rank sends its
/// values, and every rank rebuilds every shard's result from them to combine them in shard order.
public protocol ShardResult {
    var exchangedValues: [Float] { get }
    /// This result with another shard's values (names and everything else kept).
    func replacingValues(_ values: [Float]) -> Self
}

extension Float: ShardResult {
    public var exchangedValues: [Float] { [self] }
    public func replacingValues(_ values: [Float]) -> Float { values[0] }
}
