import ArgumentParser
import Foundation
import Checkpoint
import ImageKit
import Tensor
import Training
import ViT

/// `bootmae-train embed --model DIR IMAGE...`: one embedding per image, as JSON lines or .npy.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute image embeddings with a model directory or a training run folder.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case jsonl, npy }

    @Option(name: .long, help: "Model directory (config.json + model.safetensors) or a training run folder (its checkpoint).")
    var model: String

    @Argument(help: "PNG or JPEG images to embed.")
    var images: [String]

    @Option(help: "Pooling: cls (the class token) or mean (mean of patch tokens). Default: the model's global_pool.")
    var pooling: ViTConfig.Pooling?

    @Option(help: "Output format: jsonl (one {\"image\", \"embedding\"} object per line) or npy (an N×D float32 array).")
    var format: Format = .jsonl

    @Option(help: "Write to this file instead of standard output (required for npy). Written atomically.")
    var output: String?

    @Option(help: "Images per forward pass.")
    var batchSize: Int = 16

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Run the encoder's Linear layers as the server does: fp32 (packed) or bf16 (where the CPU has bf16 instructions; fp32 otherwise, said on stderr). Default: fp32 through BLAS, the training arithmetic.")
    var precision: InferencePrecision?

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image path") }
        if format == .npy && output == nil { throw ValidationError("--format npy writes binary: give --output FILE.npy") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        BLAS.threads = threads
        let encoder: VisionTransformer
        do { encoder = try ModelSource.encoder(model) } catch {
            throw fail("error: cannot load model from \(model): \(error)", code: 2)
        }
        if let precision { InferencePacking.apply(precision, to: encoder) }
        let prep = ModelInput(config: encoder.config)
        // Decode everything first: a bad image stops the command before any output is written.
        var inputs: [[Float]] = []
        for path in images {
            do { inputs.append(try prep.load(path: path)) } catch {
                throw fail("error: \(path): \(error)", code: 1)
            }
        }
        var embeddings: [Tensor] = []
        for start in stride(from: 0, to: inputs.count, by: batchSize) {
            let batch = prep.batch(Array(inputs[start..<min(start + batchSize, inputs.count)]))
            embeddings.append(encoder.embed(batch, pooling: pooling))
        }
        let dim = embeddings.first?.lastDim ?? 0
        let rows = embeddings.flatMap(\.data)
        let data: Data
        switch format {
        case .jsonl:
            var text = ""
            for (i, path) in images.enumerated() {
                let values = rows[(i * dim)..<((i + 1) * dim)].map { "\($0)" }.joined(separator: ",")
                text += "{\"image\":\(jsonString(path)),\"embedding\":[\(values)]}\n"
            }
            data = Data(text.utf8)
        case .npy:
            data = NPY.encode(rows, shape: [images.count, dim])
        }
        if let output {
            do { try AtomicFile.write(data, to: URL(fileURLWithPath: output)) } catch {
                throw fail("error: \(error)", code: 1)
            }
        } else {
            FileHandle.standardOutput.write(data)
        }
    }
}

extension ViTConfig.Pooling: ExpressibleByArgument {}
extension InferencePrecision: ExpressibleByArgument {}

/// `--precision` of the commands that run a model for inference (embed, eval).
enum InferencePacking {
    /// Packs the encoder's Linear layers at `precision`, as the server does, and says on stderr
    /// when the CPU runs another precision than the one asked for.
    static func apply(_ precision: InferencePrecision, to encoder: VisionTransformer) {
        encoder.packForInference(releasingPlainValues: true, precision: precision)
        let kernel = encoder.inferenceKernel
        if kernel.precision != precision {
            FileHandle.standardError.write(Data("note: \(precision.rawValue) asked, this CPU runs \(kernel.rawValue)\n".utf8))
        }
    }
}

/// A JSON string literal for `s`.
func jsonString(_ s: String) -> String {
    let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
    return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
}

/// Prints a message to stderr and returns the non-zero exit status to throw (ArgumentParser
/// would otherwise print usage text, which is noise for a runtime failure).
func fail(_ text: String, code: Int32) -> ExitCode {
    FileHandle.standardError.write(Data((text + "\n").utf8))
    return ExitCode(code)
}
