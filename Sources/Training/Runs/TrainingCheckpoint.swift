import Foundation
import Tensor
import Checkpoint

/// A resumable training state in one safetensors file: the model tensors under their checkpoint
/// names, the optimizer moments under `optim.`, and the schedule position in the metadata.
public enum TrainingCheckpoint {
    public static let format = "bootmae-swift-train-1"

    public struct Position: Sendable {
        public var step: Int
        public var adamSteps: Int
        /// Training seconds summed over every invocation of the run.
        public var seconds: Double
        public var metadata: [String: String]
        /// Data-parallel shards per batch of the job that wrote it (threads or mpirun ranks).
        public var shards: Int? { metadata[TrainingCheckpoint.shardsKey].flatMap(Int.init) }
    }

    /// The metadata key of the shards per batch (`Position.shards`).
    public static let shardsKey = "shards"

    /// What a resume with another shard count than the checkpoint's means, or nil when it is the same.
    public static func shardChangeNote(saved: Int?, now: Int) -> String? {
        guard let saved, saved != now else { return nil }
        func job(_ n: Int) -> String { n == 1 ? "1 shard (one process, --threads 1)" : "\(n) shards (mpirun -np \(n), or --threads \(n) in one process)" }
        return "note: the checkpoint was written with \(job(saved)) per batch and this job has \(job(now)). Training continues "
            + "correctly (the same batches, the same mean gradient), but the gradients are summed in another order, so from "
            + "here on the weights differ in the last bits from an uninterrupted run; resume with \(job(saved)) to match it bit for bit."
    }

    public static func save(model: ParameterList, optimizerOver trainable: ParameterList, optimizer: AdamW,
                            step: Int, seconds: Double, extra: [String: String] = [:], to url: URL) throws {
        var tensors = try model.savableTensors()
        tensors += optimizer.stateTensors(shapes: trainable).map { ("optim.\($0.0)", $0.1) }
        var meta = extra
        meta["step"] = String(step)
        meta["adam_steps"] = String(optimizer.steps)
        let skipped = optimizer.skippedSteps
        if !skipped.isEmpty {
            meta["adam_skipped"] = String(decoding: try JSONSerialization.data(withJSONObject: skipped, options: .sortedKeys), as: UTF8.self)
        }
        meta["train_seconds"] = String(seconds)
        meta["format"] = format
        try SafeTensorsWriter.write(tensors, to: url, metadata: meta)
    }

    /// Loads the model tensors and optimizer moments; returns where training stood.
    public static func load(into model: ParameterList, optimizer: inout AdamW, from url: URL) throws -> Position {
        let file = try SafeTensorsFile(contentsOf: url)
        guard let step = file.metadata["step"].flatMap(Int.init), let adam = file.metadata["adam_steps"].flatMap(Int.init) else {
            throw CheckpointError.malformed(url.path, "not a training checkpoint (no step metadata)")
        }
        try ModelDirectory.load(model, from: file, ignoring: ["optim."])
        let skipped = file.metadata["adam_skipped"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Int] } ?? [:]
        try optimizer.restore(steps: adam, skipped: skipped) { try file.tensor("optim.\($0)") }
        return Position(step: step, adamSteps: adam, seconds: file.metadata["train_seconds"].flatMap(Double.init) ?? 0,
                        metadata: file.metadata)
    }
}

extension RunDirectory {
    /// Appends this invocation's command line to commands.txt (model cards quote it).
    public func recordCommand(_ arguments: [String] = CommandLine.arguments) {
        let line = "\(ISO8601DateFormatter().string(from: Date()))  " + arguments.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        appendLine(Data(line.utf8), to: "commands.txt")
    }
}
