import Foundation
import Tensor
import ViT

/// Dynamic batching on one compute thread (the numeric kernels already use every core).
///
/// Requests add one job per image to their model's queue; the compute thread takes the model with
/// the oldest waiting job, lets its batch fill for up to `maxDelay` (or until `maxBatch` jobs wait),
/// runs one encoder forward for the batch and completes each job. A full queue is refused at once
/// (429); a job still waiting at its deadline is failed (503) instead of run.
public final class Batcher: @unchecked Sendable {
    public struct Limits: Sendable {
        public var maxBatch: Int
        public var maxDelay: TimeInterval
        public var maxQueue: Int
        public init(maxBatch: Int = 16, maxDelay: TimeInterval = 0.005, maxQueue: Int = 256) {
            self.maxBatch = maxBatch; self.maxDelay = maxDelay; self.maxQueue = maxQueue
        }
    }

    /// What a job asks of the encoder; every kind shares the same forward pass.
    public enum Output: Sendable {
        case embedding([Float])
        case logits([Float])
    }

    public enum Kind: Sendable {
        case embed(ViTConfig.Pooling)
        case classify
    }

    struct Job {
        let model: LoadedModel
        let input: [Float]
        let kind: Kind
        let enqueued: Date
        let deadline: Date
        let completion: @Sendable (Result<Output, APIError>) -> Void
    }

    /// Work that is not batched (reconstructions) but must not run beside a batch.
    struct Task {
        let deadline: Date
        let run: @Sendable () -> Void
        let expire: @Sendable () -> Void
    }

    public let limits: Limits
    let metrics: Metrics
    private let condition = NSCondition()
    /// One queue per loaded model instance: a model swapped while its jobs wait keeps them apart
    /// from the new instance's, so a batch never mixes weights. A key's jobs hold its model, so the
    /// identifier cannot be reused while the queue exists; empty queues are dropped.
    private var queues: [ObjectIdentifier: [Job]] = [:]
    private var tasks: [Task] = []
    private var waiting = 0
    private var thread: Thread?

    public init(limits: Limits, metrics: Metrics) {
        self.limits = limits
        self.metrics = metrics
        // The compute thread owns its batcher (a strong capture): a batcher lives as long as the
        // process, and one dropped early must not leave its thread reading a freed object.
        let thread = Thread { self.loop() }
        thread.name = "inference"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Queued images (all models).
    public var depth: Int { condition.lock(); defer { condition.unlock() }; return waiting }

    /// Enqueues one job per input; throws 429 without queueing anything when they do not fit.
    func submit(model: LoadedModel, inputs: [[Float]], kind: Kind, deadline: Date,
                completion: @escaping @Sendable (Int, Result<Output, APIError>) -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        guard waiting + inputs.count <= limits.maxQueue else {
            metrics.increment("bootmae_rejected_total", [("reason", "queue_full")])
            throw APIError.overloaded(retryAfter: 1)
        }
        let now = Date()
        for (i, input) in inputs.enumerated() {
            queues[ObjectIdentifier(model), default: []].append(Job(model: model, input: input, kind: kind, enqueued: now, deadline: deadline,
                                                     completion: { completion(i, $0) }))
        }
        waiting += inputs.count
        metrics.set("bootmae_queue_depth", [], Double(waiting))
        condition.signal()
    }

    /// Runs `work` on the compute thread between batches.
    func schedule(deadline: Date, run: @escaping @Sendable () -> Void, expire: @escaping @Sendable () -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        guard waiting + tasks.count < limits.maxQueue else { throw APIError.overloaded(retryAfter: 1) }
        tasks.append(Task(deadline: deadline, run: run, expire: expire))
        condition.signal()
    }

    private func loop() {
        while true {
            condition.lock()
            while waiting == 0 && tasks.isEmpty { condition.wait() }
            if !tasks.isEmpty {
                let task = tasks.removeFirst()
                condition.unlock()
                if Date() > task.deadline { task.expire() } else { task.run() }
                continue
            }
            // The model whose oldest job has waited longest; give its batch time to fill.
            let (id, oldest) = queues.filter { !$0.value.isEmpty }.map { ($0.key, $0.value[0].enqueued) }.min { $0.1 < $1.1 }!
            let fillBy = oldest.addingTimeInterval(limits.maxDelay)
            while queues[id]!.count < limits.maxBatch && Date() < fillBy && tasks.isEmpty {
                _ = condition.wait(until: fillBy)
            }
            let take = min(limits.maxBatch, queues[id]!.count)
            let jobs = Array(queues[id]!.prefix(take))
            queues[id]!.removeFirst(take)
            if queues[id]!.isEmpty { queues[id] = nil }
            waiting -= take
            metrics.set("bootmae_queue_depth", [], Double(waiting))
            condition.unlock()
            run(jobs)
        }
    }

    private func run(_ jobs: [Job]) {
        let now = Date()
        let live = jobs.filter { $0.deadline > now }
        for job in jobs where job.deadline <= now {
            metrics.increment("bootmae_rejected_total", [("reason", "deadline")])
            job.completion(.failure(.timeout("the request waited past its deadline in the queue; retry or raise --request-timeout")))
        }
        guard let model = live.first?.model else { return }
        let c = model.config
        for job in live { metrics.observe("bootmae_queue_seconds", [("model", model.id)], now.timeIntervalSince(job.enqueued)) }
        let start = Date()
        let images = Tensor(shape: [live.count, c.inChans, c.imgSize, c.imgSize], data: live.flatMap(\.input))
        let tokens = model.encoder.infer(images, workspace: model.workspace)
        var pooledCache: [ViTConfig.Pooling: Tensor] = [:]
        func pooled(_ p: ViTConfig.Pooling) -> Tensor {
            if let t = pooledCache[p] { return t }
            let t = model.encoder.pool(tokens, p)
            pooledCache[p] = t
            return t
        }
        var logits: Tensor?
        if live.contains(where: { if case .classify = $0.kind { return true } else { return false } }) {
            logits = model.encoder.classify(pooled(c.globalPool))
        }
        metrics.observe("bootmae_inference_seconds", [("model", model.id)], Date().timeIntervalSince(start))
        metrics.observe("bootmae_batch_size", [("model", model.id)], Double(live.count), buckets: Metrics.batchBuckets)
        metrics.increment("bootmae_images_total", [("model", model.id)], by: Double(live.count))
        for (i, job) in live.enumerated() {
            switch job.kind {
            case .embed(let pooling):
                let e = pooled(pooling)
                let d = e.lastDim
                job.completion(.success(.embedding(Array(e.data[(i * d)..<((i + 1) * d)]))))
            case .classify:
                let l = logits!
                let k = l.lastDim
                job.completion(.success(.logits(Array(l.data[(i * k)..<((i + 1) * k)]))))
            }
        }
    }
}
