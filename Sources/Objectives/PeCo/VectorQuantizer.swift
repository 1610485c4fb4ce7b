import Foundation
import Tensor

/// Nearest-code vector quantisation with an exponential-moving-average codebook (van den Oord et
/// al. 2017, "Neural Discrete Representation Learning", §3.2 and appendix A.1), the
/// straight-through estimator, the commitment loss, and dead-code restarts.
///
/// - Forward: each row z of the encoder output (M, d) becomes its nearest code e_k,
///   k = argmin ‖z − e_k‖² (the lowest index on a tie, as `torch.argmin`).
/// - Backward (straight-through): the gradient that reaches the quantized rows passes unchanged
///   to z (z_q = z + sg[e_k − z]); the commitment loss β·‖z − sg[e_k]‖² adds 2β(z − e_k)/n to it.
///   The codebook gets no gradient: with EMA updates the codebook loss ‖sg[z] − e‖² of the
///   paper's plain variant is replaced by `updateEMA`, so AdamW never sees the codebook.
/// - EMA (appendix A.1): with n_k the rows assigned to code k in the step and s_k their sum,
///   N_k ← γN_k + (1−γ)n_k, m_k ← γm_k + (1−γ)s_k, e_k = m_k / N_k. The ratio of two EMAs started
///   at zero carries no start-up bias (both are scaled by 1 − γ^t), so no Laplace smoothing is
///   needed; a code with N_k = 0 keeps its value (and is a restart candidate).
/// - Dead codes (the restart rule): after the EMA update, a code whose usage N_k is below
///   `deadShare` × the mean usage ΣN/K (default 3% of a uniform share) is dead and restarts at an
///   encoder output drawn uniformly from the step's batch (Dhariwal et al. 2020, Jukebox §2.2,
///   "random restarts"), with usage ΣN/K (a uniform share, so it has about
///   ln(deadShare)/ln(γ) ≈ 350 steps at γ = 0.99 to win rows before it can be judged dead again)
///   and m_k = e_k·N_k. At the first step every code is unused (N = 0), so the codebook starts
///   from the batch's encodings (a data initialisation, as seeds for k-means recommend).
public struct VectorQuantizer: Sendable {
    /// (K, d): the codes, moved by `updateEMA` and restarts only.
    public let codebook: Parameter
    /// (K): N, the EMA of rows assigned per step.
    public let usage: Parameter
    /// (K, d): m, the EMA of the assigned rows' sums.
    public let sums: Parameter
    /// (2): the last step's batch perplexity and dead share (what the next step's report logs).
    public let health: Parameter

    public var codes: Int { codebook.shape[0] }
    public var dim: Int { codebook.shape[1] }

    /// Every tensor is state, not a trainable weight: `into` is the checkpoint's list.
    public init(codes: Int, dim: Int, name: String, into params: inout ParameterList) {
        codebook = Parameter(Tensor(zeros: [codes, dim]), trainable: false)
        usage = Parameter(Tensor(zeros: [codes]), trainable: false)
        sums = Parameter(Tensor(zeros: [codes, dim]), trainable: false)
        health = Parameter(Tensor(zeros: [2]), trainable: false)
        params.add("\(name).codebook", codebook)
        params.add("\(name).usage", usage)
        params.add("\(name).sums", sums)
        params.add("\(name).health", health)
    }

    // MARK: Lookup

    /// The nearest code of every row of `z` (M, d): argmin_k ‖z − e_k‖², lowest k on a tie.
    /// The squared distance is summed coordinate by coordinate (not ‖z‖² − 2z·e + ‖e‖², whose
    /// cancellation can reorder close codes). A row's K distances grow together, one coordinate at
    /// a time, over the codebook transposed to (d, K), so the loop over codes runs in vector lanes;
    /// each distance still adds its coordinates' squares in coordinate order, the bits of a
    /// code-by-code loop.
    public func nearest(_ z: Tensor) -> [Int] {
        let (m, d, k) = (z.rows, dim, codes)
        precondition(z.lastDim == d, "quantizer: rows of width \(z.lastDim) for codes of width \(d)")
        var columns = [Float](repeating: 0, count: d * k)
        codebook.value.withPointer { ep in
            for j in 0..<k { for c in 0..<d { columns[c * k + j] = ep[j * d + c] } }
        }
        var indices = [Int](repeating: 0, count: m)
        var distances = [Float](repeating: 0, count: k)
        z.withPointer { zp in columns.withUnsafeBufferPointer { et in distances.withUnsafeMutableBufferPointer { buffer in
            let (columns, distance) = (et.baseAddress!, buffer.baseAddress!)
            for r in 0..<m {
                let row = zp + r * d
                for j in 0..<k { distance[j] = 0 }
                for c in 0..<d {
                    let (x, column) = (row[c], columns + c * k)
                    for j in 0..<k { let diff = x - column[j]; distance[j] += diff * diff }
                }
                var best = 0, bestDistance = Float.infinity
                for j in 0..<k where distance[j] < bestDistance { (best, bestDistance) = (j, distance[j]) }
                indices[r] = best
            }
        } } }
        return indices
    }

    /// The codes `indices` as rows (M, d).
    public func lookup(_ indices: [Int]) -> Tensor {
        let d = dim
        return Tensor(shape: [indices.count, d]) { out in
            codebook.value.withPointer { ep in
                for (r, k) in indices.enumerated() { (out + r * d).update(from: ep + k * d, count: d) }
            }
        }
    }

    public struct Output: Sendable {
        public let indices: [Int]
        /// (M, d): the codes of the rows (the straight-through forward value).
        public let quantized: Tensor
        /// β·Σ‖z − e‖² / normalizer.
        public let commitment: Float
        /// Its gradient with respect to z.
        public let commitmentGrad: Tensor
    }

    /// Quantizes `z` (M, d) with the commitment loss β·Σ‖z − sg[e]‖² / `normalizer` (the mean over
    /// the whole batch's M·d elements when these rows are one shard of it).
    public func forward(_ z: Tensor, beta: Float, normalizer: Float) -> Output {
        let indices = nearest(z)
        let q = lookup(indices)
        let (loss, grad) = Self.commitment(z: z, quantized: q, beta: beta, normalizer: normalizer)
        return Output(indices: indices, quantized: q, commitment: loss, commitmentGrad: grad)
    }

    /// Straight-through: d z = d quantized + the commitment gradient.
    public func backward(_ dQuantized: Tensor, output: Output) -> Tensor {
        dQuantized + output.commitmentGrad
    }

    /// β·Σ(z − q)² / n and its gradient 2β(z − q)/n with respect to z (q is a constant).
    public static func commitment(z: Tensor, quantized q: Tensor, beta: Float, normalizer n: Float) -> (loss: Float, grad: Tensor) {
        precondition(z.shape == q.shape, "commitment: \(z.shape) against \(q.shape)")
        var total: Double = 0
        let grad = Tensor(shape: z.shape) { g in
            z.withPointer { zp in q.withPointer { qp in
                for i in 0..<z.count {
                    let diff = zp[i] - qp[i]
                    total += Double(diff * diff)
                    g[i] = 2 * beta * diff / n
                }
            } }
        }
        return (Float(Double(beta) * total / Double(n)), grad)
    }

    // MARK: EMA and restarts

    /// A step's assignment statistics: n_k (K) and s_k (K·d), summed over shards and ranks.
    public static func statistics(_ z: Tensor, indices: [Int], codes k: Int) -> (counts: [Float], sums: [Float]) {
        let d = z.lastDim
        var counts = [Float](repeating: 0, count: k), sums = [Float](repeating: 0, count: k * d)
        z.withPointer { zp in sums.withUnsafeMutableBufferPointer { s in
            for (r, code) in indices.enumerated() {
                counts[code] += 1
                Vector.add(zp + r * d, into: s.baseAddress! + code * d, d)
            }
        } }
        return (counts, sums)
    }

    /// The EMA update from a step's statistics, then the restarts of dead codes from
    /// `candidates` (K·d: one encoder output per code, drawn from the batch). Returns the codes
    /// restarted and records the batch's health.
    @discardableResult
    public func updateEMA(counts: [Float], sums batchSums: [Float], decay gamma: Float, deadShare: Float,
                          candidates: [Float]) -> [Int] {
        let (k, d) = (codes, dim)
        precondition(counts.count == k && batchSums.count == k * d && candidates.count == k * d, "quantizer: statistics of the wrong size")
        usage.value.withMutablePointer { n in sums.value.withMutablePointer { m in codebook.value.withMutablePointer { e in
            for j in 0..<k {
                n[j] = gamma * n[j] + (1 - gamma) * counts[j]
                for c in 0..<d { m[j * d + c] = gamma * m[j * d + c] + (1 - gamma) * batchSums[j * d + c] }
                if n[j] > 0 { for c in 0..<d { e[j * d + c] = m[j * d + c] / n[j] } }
            }
        } } }
        let dead = Self.deadCodes(usage: usage.value.data, share: deadShare)
        let uniform = usage.value.data.reduce(0, +) / Float(k)
        let restartUsage = uniform > 0 ? uniform : 1
        usage.value.withMutablePointer { n in sums.value.withMutablePointer { m in codebook.value.withMutablePointer { e in
            for j in dead {
                n[j] = restartUsage
                for c in 0..<d {
                    e[j * d + c] = candidates[j * d + c]
                    m[j * d + c] = candidates[j * d + c] * restartUsage
                }
            }
        } } }
        health.value = Tensor(shape: [2], data: [Self.perplexity(counts), Float(dead.count) / Float(k)])
        return dead
    }

    /// Codes whose usage is below `share` × the mean usage (all of them when nothing is used yet).
    public static func deadCodes(usage: [Float], share: Float) -> [Int] {
        let mean = usage.reduce(0, +) / Float(usage.count)
        return usage.indices.filter { usage[$0] < share * mean || usage[$0] == 0 }
    }

    /// exp of the entropy of the usage distribution counts / Σcounts: K when every code is used
    /// equally, 1 when one code takes every row (0 log 0 = 0).
    public static func perplexity(_ counts: [Float]) -> Float {
        let total = counts.reduce(0) { $0 + Double($1) }
        guard total > 0 else { return 0 }
        let entropy = counts.reduce(0.0) { h, c in c > 0 ? h - Double(c) / total * log(Double(c) / total) : h }
        return Float(exp(entropy))
    }

    /// The last step's batch perplexity and dead share.
    public var lastHealth: (perplexity: Float, deadShare: Float) { (health.value.data[0], health.value.data[1]) }
}
