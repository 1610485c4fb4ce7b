import ArgumentParser
import Foundation
import ViT
import HTTP
import Service
import Tensor

/// Reads an option's default from the environment (every flag has a BOOTMAE_* twin).
func env(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

@main
struct BootMAEServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmae-serve",
        abstract: "Serve image embeddings, masked-image reconstructions and classifications over HTTP/1.1.",
        discussion: """
        Loads every model directory under --models-dir (config.json + model.safetensors), warms each up, then
        reports ready on /readyz. Every option can also be set by the environment variable shown in its help.
        The API is described in openapi.yaml (also served at GET /openapi.yaml).
        """)

    @Option(help: "Folder of model directories [BOOTMAE_MODELS_DIR].")
    var modelsDir: String = env("BOOTMAE_MODELS_DIR") ?? "models"

    @Option(help: "Model used when a request names none (default: bootmae-vit-tiny-fmnist if present, else the first by name) [BOOTMAE_DEFAULT_MODEL].")
    var defaultModel: String?

    @Option(help: "Address to listen on [BOOTMAE_HOST].")
    var host: String = env("BOOTMAE_HOST") ?? "127.0.0.1"

    @Option(help: "Port (0 picks a free one) [BOOTMAE_PORT].")
    var port: Int = env("BOOTMAE_PORT").flatMap(Int.init) ?? 8080

    @Option(help: "Compute threads [BOOTMAE_THREADS].")
    var threads: Int = env("BOOTMAE_THREADS").flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "How a batch uses the threads: image (each thread runs whole images; best on cores the server has to itself) or operation (every op split over the threads; for busy machines) [BOOTMAE_INFERENCE_SPLIT].")
    var inferenceSplit: String = env("BOOTMAE_INFERENCE_SPLIT") ?? "image"

    @Option(help: "Number format of the encoders' Linear layers: 'bf16' for every model, 'NAME=bf16' for one (repeatable; a named model wins over the default), fp32 otherwise; bf16 runs where the CPU has AVX512-BF16 or AMX-BF16, fp32 elsewhere [BOOTMAE_PRECISION, comma-separated].")
    var precision: [String] = env("BOOTMAE_PRECISION").map { [$0] } ?? []

    @Option(help: "Largest batch of images per forward pass [BOOTMAE_MAX_BATCH].")
    var maxBatch: Int = env("BOOTMAE_MAX_BATCH").flatMap(Int.init) ?? 16

    @Option(help: "How long a batch may wait to fill, in ms [BOOTMAE_MAX_BATCH_DELAY_MS].")
    var maxBatchDelayMs: Double = env("BOOTMAE_MAX_BATCH_DELAY_MS").flatMap(Double.init) ?? 5

    @Option(help: "Images that may wait for inference before requests get 429 [BOOTMAE_MAX_QUEUE].")
    var maxQueue: Int = env("BOOTMAE_MAX_QUEUE").flatMap(Int.init) ?? 256

    @Option(help: "Seconds a request may wait for inference before it gets 503 [BOOTMAE_REQUEST_TIMEOUT].")
    var requestTimeout: Double = env("BOOTMAE_REQUEST_TIMEOUT").flatMap(Double.init) ?? 30

    @Option(help: "Largest request body in bytes [BOOTMAE_MAX_BODY_BYTES].")
    var maxBodyBytes: Int = env("BOOTMAE_MAX_BODY_BYTES").flatMap(Int.init) ?? 32 << 20

    @Option(help: "Most images in one request [BOOTMAE_MAX_IMAGES].")
    var maxImages: Int = env("BOOTMAE_MAX_IMAGES").flatMap(Int.init) ?? 64

    @Option(help: "Most pixels in one image, checked from its header before decoding [BOOTMAE_MAX_PIXELS].")
    var maxPixels: Int = env("BOOTMAE_MAX_PIXELS").flatMap(Int.init) ?? 40_000_000

    @Option(help: "Most open connections [BOOTMAE_MAX_CONNECTIONS].")
    var maxConnections: Int = env("BOOTMAE_MAX_CONNECTIONS").flatMap(Int.init) ?? 1024

    @Option(help: "Bearer token required on /v1/* (none: open) [BOOTMAE_API_KEY].")
    var apiKey: String?

    @Option(help: "Warn (code 'cropped') when the center crop cuts away more than this share of an image's area for its aspect ratio [BOOTMAE_WARN_CROP_SHARE].")
    var warnCropShare: Double = env("BOOTMAE_WARN_CROP_SHARE").flatMap(Double.init) ?? 0.2

    @Flag(inversion: .prefixedNo, help: "Score each image's reconstruction error against a calibrated pixel decoder with the model's encoder (an 'ood' field and warning) [BOOTMAE_OOD_SCORE=0 turns it off].")
    var oodScore: Bool = env("BOOTMAE_OOD_SCORE").map { !["0", "false", "no", "off"].contains($0.lowercased()) } ?? true

    @Flag(help: "Pick up model directories added to, replaced in or removed from --models-dir without a restart, once their files have been unchanged for one poll [BOOTMAE_WATCH_MODELS=1].")
    var watchModels: Bool = env("BOOTMAE_WATCH_MODELS").map { ["1", "true", "yes", "on"].contains($0.lowercased()) } ?? false

    @Option(help: "How often --watch-models looks at the folder, in ms [BOOTMAE_WATCH_INTERVAL_MS].")
    var watchIntervalMs: Int = env("BOOTMAE_WATCH_INTERVAL_MS").flatMap(Int.init) ?? 1000

    @Flag(help: "Enable POST /v1/models/{id}/load and /unload (behind --api-key when one is set) [BOOTMAE_MODEL_CONTROL=1].")
    var modelControl: Bool = env("BOOTMAE_MODEL_CONTROL").map { ["1", "true", "yes", "on"].contains($0.lowercased()) } ?? false

    @Option(help: "Seconds to finish in-flight requests after SIGTERM [BOOTMAE_DRAIN_TIMEOUT].")
    var drainTimeout: Double = env("BOOTMAE_DRAIN_TIMEOUT").flatMap(Double.init) ?? 20

    @Option(help: "An OpenAPI document to serve at /openapi.yaml instead of the one built into this binary [BOOTMAE_OPENAPI].")
    var openapi: String?

    @Flag(help: "Check GET /healthz on --host/--port and exit 0 if it answers 200 (for container health checks).")
    var healthcheck = false

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if maxBatch < 1 || maxQueue < 1 || maxImages < 1 || threads < 1 { throw ValidationError("batch, queue, image and thread limits must be positive") }
        // A request larger than the whole queue could never be accepted: it would get 429 for ever.
        if maxImages > maxQueue { throw ValidationError("--max-images (\(maxImages)) cannot exceed --max-queue (\(maxQueue))") }
        if maxBatchDelayMs < 0 || requestTimeout <= 0 { throw ValidationError("delays and timeouts must be positive") }
        if watchIntervalMs < 10 || watchIntervalMs > 3_600_000 { throw ValidationError("--watch-interval-ms must be in 10...3600000") }
        if !(warnCropShare >= 0 && warnCropShare <= 1) { throw ValidationError("--warn-crop-share must be in 0...1") }
        if split == nil { throw ValidationError("--inference-split must be image or operation, got '\(inferenceSplit)'") }
        do { _ = try precisions() } catch { throw ValidationError("\(error)") }
    }

    func precisions() throws -> PrecisionPolicy { try PrecisionPolicy(parsing: precision) }

    var split: InferenceSplit? {
        InferenceSplit(name: inferenceSplit)
    }

    func run() throws {
        if healthcheck { throw ExitCode(HealthCheck.run(host: host == "0.0.0.0" ? "127.0.0.1" : host, port: port) ? 0 : 1) }
        try Server(options: self).run()
    }
}
