import Foundation
import Tensor
import ViT
import Checkpoint
import Objectives

/// Turns a finished (or stopped) run folder into a served model directory: config.json,
/// model.safetensors (fp32 or fp16) and MODEL_CARD.md, written to a temporary folder that is
/// renamed into place, so a reader never sees a half-written model.
public enum Exporter {
    public struct ExportError: Error, CustomStringConvertible { public let description: String }

    public enum Kind: String, Codable, Sendable { case pretraining, classifier }

    public struct Summary: Codable, Sendable {
        public var kind: Kind
        public var path: String
        public var tensors: Int
        public var bytes: Int
        public var dtype: String
        /// False when the run stopped before its last step (the export is of an intermediate checkpoint).
        public var runFinished: Bool
    }

    /// What a model is for, written into its directory: `intended_input` in config.json (channels and
    /// size from the model, `domain` in words) and the card's Limitations section (`limitations`,
    /// Markdown). Kept beside the scripts that export, so a re-export reproduces the card.
    public struct Intended: Sendable {
        public var domain: String
        public var limitations: String?
        public init(domain: String, limitations: String? = nil) { self.domain = domain; self.limitations = limitations }
    }

    public static func export(run path: String, to out: String, half: Bool, overwrite: Bool, name: String? = nil,
                              intended: Intended? = nil) throws -> Summary {
        let run = RunDirectory(reading: path)
        guard FileManager.default.fileExists(atPath: path) else { throw ExportError(description: "no such run folder: \(path)") }
        guard FileManager.default.fileExists(atPath: run.file(RunDirectory.checkpointName).path) else {
            if let trainer = RunLock.trainer(in: run.url) { throw ExportError(description: trainer.beforeFirstCheckpoint(path)) }
            throw ExportError(description: "\(path) holds no \(RunDirectory.checkpointName): give the folder of a pretrain or "
                              + "finetune run (--out of those commands) that has saved a checkpoint")
        }
        let checkpoint = try SafeTensorsFile(contentsOf: run.file(RunDirectory.checkpointName))
        let dest = URL(fileURLWithPath: out)
        let fm = FileManager.default
        if fm.fileExists(atPath: dest.path) && !overwrite {
            throw ExportError(description: "\(out) already exists; pass --overwrite to replace it")
        }
        let kind: Kind = checkpoint.metadata["kind"] == "finetune" ? .classifier : .pretraining
        let tmp = dest.deletingLastPathComponent().appendingPathComponent(".\(dest.lastPathComponent).export-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        let dtype: SafeTensorsFile.DType = half ? .f16 : .f32
        // The run's folder name, not its path: two exports of the same weights are the same bytes
        // wherever the runs folder lives (a PeCo stage 2 pairs with its tokenizer by the file's hash).
        let meta = ["exported_from": run.url.lastPathComponent, "exporter": "bootmae-train export", "step": checkpoint.metadata["step"] ?? "?"]
        let parameters: ParameterList
        let serves: ModelCard.Serves
        switch kind {
        case .pretraining:
            var config = try PretrainingDirectory.readConfig(run.url)
            do { config.settings = try config.settings.exported() } catch let e as SettingsExportError {
                throw ExportError(description: e.description)
            }
            let network = try PretrainingDirectory.network(config: config, weights: checkpoint, ignoring: ["optim."])
            let objective = network.objectiveType.displayName
            if let encoder = network.objective.exportedEncoder {
                // An objective that serves only an encoder (iBOT's teacher): a plain encoder directory.
                parameters = encoder.parameters
                serves = .encoderOnly(objective: objective)
                try ModelDirectory.save(config: encoder.config, parameters: parameters, to: tmp, dtype: dtype, metadata: meta)
            } else {
                // What the objective serves (e.g. BootMAE's online network without its momentum encoder).
                parameters = network.exportParameters
                serves = ModelCard.Serves(network: network)
                try ModelDirectory.save(config: config.encoder, parameters: parameters, to: tmp, dtype: dtype, metadata: meta)
                try AtomicFile.write(try prettyJSON(config), to: tmp.appendingPathComponent(ModelDirectory.configName))
            }
        case .classifier:
            let config = try ModelDirectory.readConfig(run.url)
            let model = try ModelDirectory.encoder(config: config, weights: checkpoint, extraIgnored: ["optim."])
            parameters = model.parameters
            serves = .classifier
            try ModelDirectory.save(config: config, parameters: parameters, to: tmp, dtype: dtype, metadata: meta)
        }
        // The card shows the config.json it ships beside (an encoder-only export's is not the run's);
        // the training data and the intended input, added to it below, have sections of their own.
        let shipped = String(decoding: try Data(contentsOf: tmp.appendingPathComponent(ModelDirectory.configName)), as: UTF8.self)
        // What a measurement of the export reads without --data (relative to the working directory
        // when inside it, as the card shows paths, so a shipped config names no training machine's folders).
        // With the share of a class folder the run held out as its test split, so that measurements of the
        // export hold out the same images (a larger share would test on images it trained on).
        if let data = RecordedTrainingData.read(from: run.url) {
            var fields: [String: Any] = ["training_data": ModelCard.relativeToWorkingDirectory(data.path)]
            if let share = data.testShare { fields["test_share"] = share }
            try addFields(fields, to: tmp.appendingPathComponent(ModelDirectory.configName))
        }
        // The intended input's channels and size are the exported model's own.
        let input = try intended.map { intended in
            let c = try ModelDirectory.readConfig(tmp)
            return ModelCard.IntendedInput(channels: c.inChans, size: c.imgSize, intended: intended)
        }
        if let input {
            try addFields(["intended_input": ["channels": input.channels, "size": input.size, "domain": input.intended.domain]],
                          to: tmp.appendingPathComponent(ModelDirectory.configName))
        }
        let card = ModelCard.render(name: name ?? dest.lastPathComponent, serves: serves, run: run, checkpoint: checkpoint, dtype: dtype,
                                    intended: input, architecture: shipped)
        try AtomicFile.write(Data(card.utf8), to: tmp.appendingPathComponent("MODEL_CARD.md"))
        // Swap the new folder into place.
        if fm.fileExists(atPath: dest.path) {
            let old = dest.deletingLastPathComponent().appendingPathComponent(".\(dest.lastPathComponent).old-\(getpid())")
            try fm.moveItem(at: dest, to: old)
            try fm.moveItem(at: tmp, to: dest)
            try? fm.removeItem(at: old)
        } else {
            try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            try fm.moveItem(at: tmp, to: dest)
        }
        let bytes = (try? fm.attributesOfItem(atPath: dest.appendingPathComponent(ModelDirectory.weightsName).path)[.size] as? Int) ?? 0
        return Summary(kind: kind, path: dest.path, tensors: parameters.count, bytes: bytes, dtype: dtype.rawValue,
                       runFinished: run.isFinished)
    }

    /// A warning for `--half` on a tokenizer run. Warned, not refused: an fp16 tokenizer is a
    /// sound tokenizer of its own (`/v1/tokens`, or stage 2 trained on that export), but its codes
    /// differ from the fp32 export's at near-ties, so it cannot stand in for the export a stage-2
    /// model learned from (whose hash that model's config records, and the server compares).
    public static func halfTokenizerWarning(run path: String, half: Bool) -> String? {
        guard half, let config = try? PretrainingDirectory.readConfig(URL(fileURLWithPath: path)),
              config.settings(of: PeCoTokenizer.self) != nil else { return nil }
        return "warning: an fp16 tokenizer gives different codes than its fp32 export at near-ties: serve it beside a stage-2 "
            + "(peco) model only if that model trained on this very export (its config.json tokenizer_sha256); to ship the "
            + "tokenizer a stage 2 trained on, copy that export or export the run again without --half (the same bytes)"
    }

    /// A warning when a classifier run's test top-1 (its eval.json, else the fine-tune's last epoch)
    /// is barely above chance: below 1/K + 0.2 · (1 − 1/K) for K classes (28% of 10 classes, 60% of 2).
    /// Such a model answers with near-uniform scores; nil for a better one or when nothing was measured.
    public static func nearChanceWarning(run path: String) -> String? {
        let run = RunDirectory(reading: path)
        func top1(_ name: String) -> Double? {
            guard let data = try? Data(contentsOf: run.file(name)),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return (object["top1"] as? NSNumber)?.doubleValue
        }
        guard let config = try? ModelDirectory.readConfig(run.url), let classes = config.labels?.count, classes >= 2,
              let (measured, source) = top1("eval.json").map({ ($0, "eval.json") }) ?? top1("result.json").map({ ($0, "the last epoch") })
        else { return nil }
        let chance = 1 / Double(classes)
        guard measured < chance + 0.2 * (1 - chance) else { return nil }
        return String(format: "warning: this classifier's test top-1 is %.1f%% (%@) where chance is %.1f%% with %d classes: it is barely "
                      + "better than guessing and will answer near-uniform scores. Fine-tune longer (--epochs), with a larger learning "
                      + "rate (--lr; this run's is in its recipe.json), or from a better pretrained run",
                      100 * measured, source, 100 * chance, classes)
    }

    /// Adds `fields` (`intended_input`, `training_data`) to a written config.json.
    static func addFields(_ fields: [String: Any], to config: URL) throws {
        guard var object = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any] else {
            throw ExportError(description: "\(config.path) is not a JSON object")
        }
        object.merge(fields) { _, new in new }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), to: config)
    }

    static func prettyJSON<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(value)
    }
}

/// MODEL_CARD.md: what the model is, the data and recipe, the exact commands, wall time and metrics.
enum ModelCard {
    /// `Exporter.Intended` with the exported model's channels and size.
    struct IntendedInput {
        var channels: Int
        var size: Int
        var intended: Exporter.Intended
    }

    /// What an exported directory holds, and so what the server can answer with it.
    enum Serves {
        /// Encoder and pixel decoder (BootMAE, MAE, LoMaR).
        case withPixelDecoder(objective: String)
        /// The whole pretraining network, without a pixel decoder of its own.
        case withoutPixelDecoder(objective: String)
        /// A stage-2 network predicting the codes of the tokenizer exported as the directory
        /// `tokenizer` (PeCo), which turns them into pixels when it is served beside it.
        case codePredictor(objective: String, tokenizer: String, tokenizerSHA256: String?)
        /// A tokenizer: images to code grids and back (PeCo's stage 1).
        case tokenizer(objective: String, codebookSize: Int, grid: Int)
        /// One encoder of the pretraining network (iBOT's teacher).
        case encoderOnly(objective: String)
        case classifier

        var sentence: String {
            switch self {
            case .withPixelDecoder(let objective):
                return "A ViT pretrained with masked image modeling (\(objective): encoder + pixel decoder): serves embeddings and masked-image reconstructions."
            case .withoutPixelDecoder(let objective):
                return "A ViT pretrained with masked image modeling (\(objective)), without a pixel decoder of its own: serves embeddings."
            case .codePredictor(let objective, let tokenizer, let sha):
                return "A ViT pretrained with masked image modeling (\(objective)), without a pixel decoder of its own: it predicts the codes "
                    + "of the tokenizer `\(tokenizer)`\(sha.map { " (weights SHA-256 \($0.prefix(12))…)" } ?? ""). Serves embeddings, and "
                    + "masked-image reconstructions (`POST /v1/reconstructions`: its predicted codes decoded by that tokenizer) when the "
                    + "tokenizer export it was trained on is served beside it as the model directory `\(tokenizer)`."
            case .tokenizer(let objective, let codes, let grid):
                return "An image tokenizer (\(objective)): a ViT encoder and a codebook of \(codes) codes give an image a \(grid)×\(grid) grid "
                    + "of codes, one per patch, and its decoder turns a grid back into an image. Serves `POST /v1/tokens` (the code grid) "
                    + "and `POST /v1/tokens?decode=true` (the decoding of those codes as a PNG, with its PSNR), and embeddings; the "
                    + "stage-2 models trained on this export reconstruct through it when it is served under this directory name."
            case .encoderOnly(let objective):
                return "A ViT encoder pretrained with \(objective) and exported alone, without a pixel decoder: serves embeddings "
                    + "(reconstruction requests get a 400 that names the models that can)."
            case .classifier:
                return "A ViT classifier fine-tuned from a masked-image-modeling encoder (or trained from scratch): serves embeddings and labels."
            }
        }

        /// What an exported pretraining network serves, from what its objective can do.
        init(network: PretrainingNetwork) {
            let objective = network.objectiveType.displayName
            if let tokenizer = network.tokenizer {
                self = .tokenizer(objective: objective, codebookSize: tokenizer.codebookSize, grid: network.config.encoder.gridSize)
            } else if network.canReconstruct {
                self = .withPixelDecoder(objective: objective)
            } else if let predictor = network.codePredictor, let reference = predictor.tokenizerReference {
                self = .codePredictor(objective: objective, tokenizer: URL(fileURLWithPath: reference).lastPathComponent,
                                      tokenizerSHA256: predictor.tokenizerSHA256)
            } else {
                self = .withoutPixelDecoder(objective: objective)
            }
        }

        /// `bootmae-train calibrate` needs the pixel decoder (its score is a reconstruction error).
        var canCalibrate: Bool { if case .withPixelDecoder = self { return true } else { return false } }
    }

    /// `architecture`: the exported config.json (not the run's: an encoder-only export's differs). Paths inside the working
    /// directory (where `export` runs, normally the repository) are shown relative to it, so a card
    /// names `runs/photo-data`, not the training machine's folders.
    static func render(name: String, serves: Serves, run: RunDirectory, checkpoint: SafeTensorsFile, dtype: SafeTensorsFile.DType,
                       intended input: IntendedInput? = nil, architecture: String) -> String {
        func file(_ n: String) -> String? {
            (try? String(contentsOf: run.file(n), encoding: .utf8)).map { relativeToWorkingDirectory($0) }
        }
        let seconds = checkpoint.metadata["train_seconds"].flatMap(Double.init)
        var s = "# \(name)\n\n"
        s += serves.sentence + "\n\n"
        s += "- Exported from run `\(run.url.lastPathComponent)` at step \(checkpoint.metadata["step"] ?? "?"), weights stored as \(dtype.rawValue).\n"
        if let seconds { s += "- Training wall time: \(ProgressReporter.duration(seconds)) (all invocations).\n" }
        s += "\n## Architecture\n\n```json\n\(architecture)\n```\n"
        s += "\n## Data and recipe\n\n```json\n\(file("recipe.json") ?? "{}")\n```\n"
        if let commands = file("commands.txt") { s += "\n## Commands\n\n```\n\(commands)```\n" }
        var metrics = ""
        for n in metricFiles {
            if let text = file(n) { metrics += "\n`\(n)`:\n\n```json\n\(text)\n```\n" }
        }
        if !metrics.isEmpty { s += "\n## Metrics\n\n" + summary(run: run) + "\nThe measurements in full:\n" + metrics }
        s += "\n## Limitations\n\n"
        if let input {
            let (channels, size) = (input.channels, input.size)
            s += "Intended input (also `intended_input` in `config.json` and in `/v1/models`): **\(channels) channel\(channels == 1 ? " (grayscale)" : "s (RGB)"), "
                + "\(size)×\(size) px, \(input.intended.domain)**.\n"
            if let limitations = input.intended.limitations { s += "\n" + limitations.trimmingCharacters(in: .whitespacesAndNewlines) + "\n" }
            return s
        }
        s += "Trained and evaluated only on the data named above; inputs are resized and center-cropped to the configured size, "
            + "and images unlike the training data get answers that mean little. State the intended input (channels, size, domain) here and as "
            + "`intended_input` in config.json (`/v1/models` shows it)"
            + (serves.canCalibrate ? ", and run `bootmae-train calibrate --model DIR --data DATA` so that answers carry an out-of-distribution score.\n" : ".\n")
        return s
    }

    /// `text` with every path that starts in the working directory made relative to it (the
    /// directory itself becomes `.`), in plain and in JSON-escaped form (`\/`, as JSONEncoder writes
    /// slashes). A path starts a line, a JSON string, a quoted word or a command-line word (after a
    /// space or `=`); the same letters inside another path stay.
    static func relativeToWorkingDirectory(_ text: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        guard cwd != "/" else { return text }
        var result = text
        for (directory, slash) in [(cwd, "/"), (cwd.replacingOccurrences(of: "/", with: "\\/"), "\\/")] {
            let start = #"(?<=^|["'\s=])"# + NSRegularExpression.escapedPattern(for: directory)
            // Inside it: drop the directory and its slash. The directory itself: ".".
            for (pattern, template) in [(start + NSRegularExpression.escapedPattern(for: slash), ""), (start + #"(?=$|["'\s])"#, ".")] {
                guard let regex = try? NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines]) else { continue }
                result = regex.stringByReplacingMatches(in: result, range: NSRange(result.startIndex..., in: result), withTemplate: template)
            }
        }
        return result
    }

    /// The result files a run folder may hold, in the order the card shows them.
    static let metricFiles = ["result.json", "history.json", "eval.json", "eval-random.json", "linprobe.json", "knn.json", "tokenizer.json"]

    /// One line per headline number found in the run folder's result files, with the data it was
    /// measured on (the file's `data`: folder name and split; "not recorded" in files from before).
    static func summary(run: RunDirectory) -> String {
        func object(_ n: String) -> [String: Any]? {
            (try? Data(contentsOf: run.file(n))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        }
        func number(_ n: String, _ key: String) -> Double? { (object(n)?[key] as? NSNumber)?.doubleValue }
        func measuredOn(_ n: String) -> String {
            guard let data = object(n)?["data"] as? [String: Any], let path = data["path"] as? String, let split = data["split"] as? String
            else { return "not recorded" }
            return MeasuredData(path: path, split: split).summary
        }
        var lines: [String] = []
        func row(_ n: String, _ metric: String, _ value: String) { lines.append("| \(metric) | \(value) | \(measuredOn(n)) |") }
        if let top1 = number("eval.json", "top1") { row("eval.json", "test top-1", String(format: "%.2f%%", 100 * top1)) }
        for n in ["eval.json", "eval-random.json"] {
            if let psnr = number(n, "psnr"), let masking = object(n)?["masking"] as? String {
                // A stage-2 model's reconstructions are its codes decoded by its tokenizer (`eval` says which).
                let through = (object(n)?["tokenizer"] as? String).map { ", decoded by the tokenizer `\($0)`" } ?? ""
                row(n, "masked-patch PSNR, \(masking) masks\(through)", String(format: "%.2f dB", psnr))
            }
        }
        if let top1 = number("knn.json", "top1") { row("knn.json", "k-NN top-1 (frozen)", String(format: "%.2f%%", 100 * top1)) }
        if let top1 = number("linprobe.json", "top1") { row("linprobe.json", "linear probe top-1 (frozen)", String(format: "%.2f%%", 100 * top1)) }
        // A tokenizer's own numbers (`tokenizer-eval`).
        let tok = "tokenizer.json"
        if let psnr = number(tok, "psnr") { row(tok, "PSNR through the codes", String(format: "%.2f dB", psnr)) }
        if let perplexity = number(tok, "perplexity"), let codes = number(tok, "codebookSize") {
            row(tok, "code perplexity", String(format: "%.1f of %d codes", perplexity, Int(codes)))
        }
        if let unused = number(tok, "unusedShare") { row(tok, "unused codes", String(format: "%.1f%%", 100 * unused)) }
        if let top1 = ((object(tok)?["bagOfCodesProbe"] as? [String: Any])?["top1"] as? NSNumber)?.doubleValue {
            row(tok, "bag-of-codes linear probe top-1", String(format: "%.2f%%", 100 * top1))
        }
        return lines.isEmpty ? "" : "| metric | value | measured on |\n|---|---|---|\n" + lines.joined(separator: "\n") + "\n"
    }
}
