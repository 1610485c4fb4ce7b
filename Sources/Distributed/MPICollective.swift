import CMPIShim
import Foundation
import Tensor

/// The ranks of an Open MPI job (`mpirun -np N bootmae-train ...`) as a `Collective`. Only the
/// main thread calls it. A failed call means the job is broken (a rank died, a link dropped):
/// the rank says so on stderr and aborts the whole job, whose run folder keeps its last
/// checkpoint.
public final class MPICollective: Collective, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Wall seconds of every `sumInRankOrder` (the gradient sums, one per step) and their length.
    private var sumSeconds: [Double] = []
    private var summedFloats = 0

    init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// Order-preserving sum from collectives (`MPI_Allreduce` does not add in rank order): the
    /// vector is cut into one contiguous slice per rank; `MPI_Alltoallv` gives rank r slice r of
    /// every rank's vector; r adds them in rank order; `MPI_Allgatherv` hands every rank every
    /// summed slice. Each element is added exactly as in ((b₀ + b₁) + b₂) + …, and every rank
    /// sends and receives (N−1)/N of the vector twice: the bytes of a ring all-reduce.
    public func sumInRankOrder(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let started = DispatchTime.now().uptimeNanoseconds
        defer {
            sumSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
            summedFloats = buffer.count
        }
        let n = buffer.count
        let starts = (0...size).map { $0 * n / size }
        let counts = (0..<size).map { Int32(starts[$0 + 1] - starts[$0]) }
        let displs = (0..<size).map { Int32(starts[$0]) }
        let mine = Int(counts[rank])
        var received = [Float](repeating: 0, count: mine * size)
        let recvCounts = [Int32](repeating: Int32(mine), count: size)
        let recvDispls = (0..<size).map { Int32($0 * mine) }
        received.withUnsafeMutableBufferPointer { recv in
            check(bm_mpi_alltoallv_floats(buffer.baseAddress, counts, displs, recv.baseAddress, recvCounts, recvDispls), "MPI_Alltoallv")
            // Slice `rank` of rank 0's vector, then + rank 1's, + rank 2's, … (Vector.add: y[i] += x[i]).
            let sum = recv.baseAddress!
            for q in 1..<size { Vector.add(sum + q * mine, into: sum, mine) }
            check(bm_mpi_allgatherv_floats(sum, Int32(mine), buffer.baseAddress, counts, displs), "MPI_Allgatherv")
        }
    }

    public func gather(_ values: [Float]) -> [[Float]] {
        let count = values.count
        var all = [Float](repeating: 0, count: count * size)
        all.withUnsafeMutableBufferPointer { check(bm_mpi_allgather_floats(values, Int32(count), $0.baseAddress), "MPI_Allgather") }
        return (0..<size).map { Array(all[($0 * count)..<(($0 + 1) * count)]) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) {
        guard buffer.count > 0 else { return }
        check(bm_mpi_bcast_bytes(buffer.baseAddress, Int64(buffer.count), Int32(root)), "MPI_Bcast")
    }

    public func any(_ flag: Bool) -> Bool {
        var result: Int32 = 0
        check(bm_mpi_allreduce_max_int(flag ? 1 : 0, &result), "MPI_Allreduce")
        return result != 0
    }

    /// Ends this rank's part of the job normally (every rank must call it); rank 0 reports what
    /// the gradient sums cost.
    public func finish() {
        if rank == 0, let report = sumReport { FileHandle.standardError.write(Data((report + "\n").utf8)) }
        _ = bm_mpi_finalize()
    }

    /// "mpi: 6 gradient sums of … floats …": the vector, the bytes each rank sent per sum (the
    /// Alltoallv and the Allgatherv each send (N−1)/N of it) and the median and fastest wall time.
    var sumReport: String? {
        guard !sumSeconds.isEmpty else { return nil }
        let sorted = sumSeconds.sorted()
        let megabytes = Double(summedFloats * 4) / 1e6
        let sent = 2 * Double(size - 1) / Double(size) * megabytes
        return String(format: "mpi: %d gradient sums over %d ranks of %d floats (%.2f MB) each; every rank sent %.2f MB per sum; "
                      + "median %.2f ms, fastest %.2f ms", sumSeconds.count, size, summedFloats, megabytes, sent,
                      sorted[sorted.count / 2] * 1e3, sorted[0] * 1e3)
    }

    /// Says `message` (with this rank's index) and ends every rank of the job with `code`.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("bootmae-train rank \(rank) of \(size): \(message)\n".utf8))
        bm_mpi_abort(code)
        exit(code)
    }

    private func check(_ code: Int32, _ call: String) {
        guard code != 0 else { return }
        abort("\(call) failed (\(MPIJob.errorString(code))): another rank of the job has stopped (died, killed, or its "
              + "host is unreachable). Ending the job; the run folder keeps its last checkpoint — resume with --resume "
              + "and the same number of ranks.")
    }
}

/// How this process was started: alone, or as one rank of an Open MPI job.
public enum MPIJob {
    /// True when Open MPI's launcher (mpirun, orted, an MPIJob's launcher) started this process.
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// Ranks of this job on this machine (from Open MPI's environment; 1 when not under mpirun).
    public static var localRanks: Int {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
    }

    /// Whether this binary was compiled against Open MPI.
    public static var available: Bool { bm_mpi_available() != 0 }

    /// The job this process belongs to: `SingleProcess` when started on its own, the MPI ranks
    /// under `mpirun`. Throws when started by mpirun but built without Open MPI, or when MPI
    /// cannot start.
    public static func join() throws -> any Collective {
        guard launchedByMPI else { return SingleProcess() }
        guard available else {
            throw JobError(description: "started by mpirun, but this bootmae-train was built without Open MPI "
                           + "(install libopenmpi-dev, e.g. with scripts/setup.sh, and rebuild); without mpirun it trains in one process")
        }
        var rank: Int32 = 0, size: Int32 = 1
        let code = bm_mpi_init(&rank, &size)
        guard code == 0 else { throw JobError(description: "MPI_Init failed: \(errorString(code))") }
        return MPICollective(rank: Int(rank), size: Int(size))
    }

    public struct JobError: Error, CustomStringConvertible { public let description: String }

    static func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        bm_mpi_error_string(code, &text, Int32(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
