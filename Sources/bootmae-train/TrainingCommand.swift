import ArgumentParser
import Distributed
import Foundation
import Tensor
import Training
import ViT

// What the training and measuring subcommands share: their common flags, the run-folder shape of
// a training command, signal handling, and the small checks their flags need.

/// The shared shape of a training command: threads, SIGINT/SIGTERM handling, the run folder (with
/// this command line recorded), errors as one-line messages, and exit status 130 after an
/// interruption (the checkpoint is saved, but the run is not finished).
///
/// Under `mpirun` the process is one rank of a data-parallel job (`MPIJob`): rank 0 owns the run
/// folder (the others open it only by name and never write), and an error on any rank ends the
/// whole job with its message instead of leaving the other ranks waiting.
func runTraining(_ common: CommonTrainingOptions, _ body: (RunDirectory, StopFlag, any Collective) throws -> Void) throws {
    let job: any Collective
    do { job = try MPIJob.join() } catch { throw fail("error: \(error)", code: 1) }
    TensorRuntime.configure(threads: common.threadsPerProcess, repeatedSteps: true)
    let stop = installStopHandlers()
    do {
        let dir: RunDirectory
        var finished = false
        if job.isRoot {
            dir = try RunDirectory(common.out, mode: common.mode)
            finished = common.resume && dir.isFinished
        } else {
            dir = RunDirectory(reading: common.out)
        }
        if job.any(finished) {
            // Nothing to do, and nothing to rewrite: its result.json stays as the run left it.
            if job.isRoot {
                FileHandle.standardError.write(Data("\(common.out) already finished (see its result.json); nothing to resume. To train longer, start a new run.\n".utf8))
            }
            (job as? MPICollective)?.finish()
            return
        }
        if job.isRoot { dir.recordCommand() }
        try body(dir, stop, job)
    } catch {
        if let mpi = job as? MPICollective { mpi.abort("error: \(error)") }
        throw fail("error: \(error)", code: 1)
    }
    (job as? MPICollective)?.finish()
    if stop.isSet { throw ExitCode(130) }
}

/// Rank 0's `make()` on every rank of the job, as JSON: what only rank 0 reads (the run folder,
/// a pretrained model's config) or decides. One process just calls `make`.
func onRoot<T: Codable>(_ job: any Collective, _ make: () throws -> T) throws -> T {
    guard job.isDistributed else { return try make() }
    let bytes = job.isRoot ? Array(try JSONEncoder().encode(try make())) : []
    return try JSONDecoder().decode(T.self, from: Data(job.broadcast(bytes)))
}

/// A run's recorded recipe: where its dataset was.
protocol RecordedRecipe: Codable { var data: String { get } }
extension PretrainRecipe: RecordedRecipe {}
extension FinetuneRecipe: RecordedRecipe {}

/// What rank 0 hands every rank of a job before training.
struct RunSetup<Config: Codable, Recipe: Codable>: Codable {
    var config: Config
    var recipe: Recipe
}

/// The model and recipe every rank of a job trains with: rank 0 reads them from the run folder when
/// resuming (and checks the recorded dataset is still there) or plans a fresh run with `fresh`, whose
/// log notes come back too (rank 0's; empty elsewhere and on resume).
func runSetup<Config: Codable, Recipe: RecordedRecipe>(
    _ common: CommonTrainingOptions, dir: RunDirectory, job: any Collective,
    fresh: () throws -> (Config, Recipe, notes: [String])
) throws -> (config: Config, recipe: Recipe, notes: [String]) {
    var notes: [String] = []
    let run = try onRoot(job) { () throws -> RunSetup<Config, Recipe> in
        if common.resume {
            let recipe = try dir.readJSON(Recipe.self, from: "recipe.json")
            try checkRecordedDataset(recipe.data, run: dir)
            return RunSetup(config: try dir.readJSON(Config.self, from: "config.json"), recipe: recipe)
        }
        let planned = try fresh()
        notes = planned.notes
        return RunSetup(config: planned.0, recipe: planned.1)
    }
    return (run.config, run.recipe, notes)
}

/// Flags every training subcommand shares.
struct CommonTrainingOptions: ParsableArguments {
    @Option(help: "Dataset: an IDX folder or an ImageFolder root (root/<class>/<image>). Default: Fashion-MNIST in /usr/share/datasets/fashion-mnist.")
    var data: String?

    @Option(help: "Run folder for checkpoints, metrics and results.")
    var out: String

    @Option(help: "Random seed (data order, augmentation, masks, initialisation).")
    var seed: UInt64 = 0

    @Option(help: "Epochs to train (default: 100 for pretrain, 50 for finetune).")
    var epochs: Int?

    @Option(help: "Stop after N steps in this invocation (smoke runs; resume later).")
    var maxSteps: Int?

    @Flag(help: "Continue the run in --out from its checkpoint, with its saved recipe (other flags may be given when they equal the recorded values; --threads and --max-steps may change).")
    var resume = false

    @Flag(help: "Start over in an --out folder that already holds a run.")
    var overwrite = false

    @Option(help: "Compute threads (data-parallel shards in one process; per rank under mpirun, where the default is the cores divided by the ranks on the machine).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Train on only N images of the train split (spread evenly over it): quick experiments.")
    var subset: Int?

    /// --threads, or under mpirun without it, this rank's share of the machine's cores.
    var threadsPerProcess: Int {
        guard MPIJob.launchedByMPI && !givenFlags().contains("--threads") else { return threads }
        return max(1, ProcessInfo.processInfo.activeProcessorCount / MPIJob.localRanks)
    }

    var mode: RunDirectory.Mode { resume ? .resume : (overwrite ? .overwrite : .fresh) }

    static let defaultData = "/usr/share/datasets/fashion-mnist"
    var dataPath: String { data ?? Self.defaultData }
    /// Recorded in recipe.json absolute, so --resume works from any working directory.
    var absoluteDataPath: String { URL(fileURLWithPath: dataPath).standardizedFileURL.path }

    /// Flags --resume accepts; the rest describe a run, and the saved recipe already does.
    static let resumeFlags: Set<String> = ["--out", "--resume", "--threads", "--max-steps"]

    func validate() throws {
        try ensure(!(resume && overwrite), "--resume and --overwrite exclude each other: drop --overwrite to continue the run, or --resume to start it over")
        try ensure(maxSteps.map { $0 >= 1 } ?? true, "--max-steps must be positive")
        try ensure(epochs.map { $0 >= 1 } ?? true, "--epochs must be positive")
        try ensure(subset.map { $0 >= 1 } ?? true, "--subset must be positive")
        try ensure(threads >= 1, "--threads must be positive")
        // With --resume, each command compares the other flags with the recorded run (`ensureAgrees`).
    }

    /// The flags given besides those --resume always takes: they must agree with the recorded run.
    var recipeFlags: Set<String> { Set(givenFlags()).subtracting(Self.resumeFlags) }

    /// The recorded run's recipe and model when --resume is given with flags that must agree with
    /// them; nil otherwise, or when the folder holds no readable run (`run()` then says what is wrong).
    func recordedRun<Config: Decodable, Recipe: Decodable>(_: Config.Type, _: Recipe.Type) -> (Config, Recipe)? {
        guard resume, !recipeFlags.isEmpty else { return nil }
        let run = RunDirectory(reading: out)
        guard let config = try? run.readJSON(Config.self, from: "config.json"),
              let recipe = try? run.readJSON(Recipe.self, from: "recipe.json") else { return nil }
        return (config, recipe)
    }
}

extension MaskingSpec: ExpressibleByArgument {}
extension ModelPreset: ExpressibleByArgument {}

/// SIGINT / SIGTERM set a flag the loop polls; a second signal exits at once.
func installStopHandlers() -> StopFlag {
    let flag = StopFlag()
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { @Sendable in
            if flag.isSet { exit(130) }
            FileHandle.standardError.write(Data("\nstopping after this step (signal again to quit at once)\n".utf8))
            flag.set()
        }
        source.resume()
        signalSources.append(source)
    }
    return flag
}

/// Keeps the signal sources alive for the life of the process.
nonisolated(unsafe) var signalSources: [DispatchSourceSignal] = []

/// A resumed run reads the dataset its recipe.json names; say so when it is gone (moved, say).
func checkRecordedDataset(_ path: String, run: RunDirectory) throws {
    guard !FileManager.default.fileExists(atPath: path) else { return }
    throw ValidationError("the run's dataset \(path) no longer exists; if it moved, set \"data\" in "
                          + "\(run.file("recipe.json").path) to its new path")
}

/// The long flags on this process's command line after the subcommand ("--lr=1" counts as "--lr"),
/// for rules about flags that carry a default and so cannot be told apart from absent ones.
func givenFlags() -> [String] {
    CommandLine.arguments.dropFirst(2).filter { $0.hasPrefix("--") }.map { String($0.prefix { $0 != "=" }) }
}

extension ParsableCommand {
    /// `body`, with a usage error it throws reported as one thrown by `validate()` is: the message,
    /// this subcommand's usage line, exit 64 (thrown out of `run()`, the parser would show the top
    /// command's usage instead).
    func reportingUsageErrors<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ValidationError {
            let name = "\(BootMAETrain.configuration.commandName ?? "bootmae-train") \(Self._commandName)"
            FileHandle.standardError.write(Data(("Error: \(error.message)\nUsage: \(BootMAETrain.usageString(for: Self.self))\n"
                                                 + "  See '\(name) --help' for more information.\n").utf8))
            throw ExitCode.validationFailure
        }
    }
}

/// Throws `message` as a usage error (exit 64) unless `condition` holds.
func ensure(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ValidationError(message()) }
}

/// A model-config problem (worded with config.json's field names, as `ViTConfig.validationErrors`
/// says it for a hand-written file) in the command line's terms.
func inFlagTerms(_ problem: String) -> String {
    problem.replacingOccurrences(of: "img_size", with: "--img-size").replacingOccurrences(of: "patch_size", with: "the patch size")
}

/// "1 channel (grayscale)" or "3 channels (RGB)", for run headers.
func channelsText(_ channels: Int) -> String {
    channels == 1 ? "1 channel (grayscale)" : "\(channels) channels (RGB)"
}

// MARK: Defaults chosen from the data

/// The batch of a run that gave no --batch-size: 256 (the official recipes' unit) when the data
/// holds at least 4 such batches, else the largest power of two that leaves 4 steps per epoch, but
/// at least 8 images (fewer steps then) and never more than the data holds.
func defaultBatchSize(images: Int) -> Int {
    var batch = 256
    while batch > 8 && images / batch < 4 { batch /= 2 }
    return max(1, min(batch, images))
}

/// The usage error of a batch larger than the training data: which flag, and what would work.
func batchTooLarge(_ batch: Int, images: Int, data: String) -> ValidationError {
    let suggestion = defaultBatchSize(images: images)
    return ValidationError("--batch-size \(batch) is more than the \(images) training images of \(data), so not one step "
                           + "would run: pass --batch-size \(suggestion) (\(images / suggestion) steps per epoch; at most \(images)), "
                           + "or leave --batch-size out to have one chosen from the data size")
}

/// The peak learning rate of a run given no --lr: `base` × batch / 256 (the official recipes' linear
/// scaling rule), except that a batch chosen from a small dataset (below 256) takes `base` itself: such
/// a run has a few dozen steps, and the linear rule's rate barely moves the weights in them (a 10-epoch
/// fine-tune on 30 photos in 3 classes, batch 8: test top-1 22% at the linear 1.6e-5 and at a
/// square-root-scaled 8.8e-5, 78% at the base 5e-4; chance is 33%).
func peakLearningRate(base: Double, batch: Int, batchChosen: Bool) -> Double {
    batchChosen && batch < 256 ? base : base * Double(batch) / 256
}

/// The peak learning rate `--blr base` means on `--resume`: the recorded one when either rule gives it
/// (the recipe records the rate, not whether the batch was chosen from the data), else the linear
/// rule's, which the resume check then refuses as a change, naming both.
func resumedPeakLearningRate(base: Double, batch: Int, recorded: Double) -> Double {
    let candidates = [false, true].map { peakLearningRate(base: base, batch: batch, batchChosen: $0) }
    return candidates.first { abs($0 - recorded) <= 1e-12 * max(1, abs(recorded)) } ?? candidates[0]
}

/// The log lines of a batch picked from the data and of the learning rate that came with it, or of a
/// learning rate the linear scaling rule made small, saying what to change.
func batchNotes(batch: Int, chosen: Bool, images: Int, lr: Double, scaledFrom base: Double?) -> [String] {
    var notes: [String] = []
    if chosen && batch != 256 {
        notes.append("batch \(batch): chosen for \(images) training images (\(images / batch) steps per epoch; --batch-size to change)")
    }
    guard let base else { return notes }
    if chosen && batch < 256 {
        notes.append(String(format: "learning rate %.3g: the base rate, unscaled, as the batch was chosen for a small dataset (the linear ", lr)
                     + String(format: "scaling rule, base × %d / 256 = %.3g, barely moves the weights in a short run); --lr to choose another", batch,
                              base * Double(batch) / 256))
    } else if batch <= 64 {
        notes.append(String(format: "warning: the peak learning rate is %.3g (base %.3g × batch %d / 256, the linear scaling rule): ", lr, base, batch)
                     + "small batches make it small, and a short run may barely move the weights; "
                     + String(format: "pass --lr (e.g. --lr %.3g, the unscaled base) or train more --epochs", base))
    }
    return notes
}

/// A warning when the images are clearly larger than the model's input (they are scaled down to
/// it), saying how to train at their size; nil when they are not, or when --img-size was given.
func imageSizeWarning(_ dataset: any ImageDataset, data: String, imgSize: Int, patchSize: Int, preset: String?) -> String? {
    guard dataset is ImageFolderDataset || (dataset as? SubsetDataset)?.base is ImageFolderDataset,
          let size = dataset.typicalImageSize() else { return nil }
    let side = min(size.width, size.height)
    guard Double(side) >= 1.25 * Double(imgSize) else { return nil }
    // Training at the images' own size pays up to 224 px (the usual ViT input); beyond it the
    // compute grows with the square of the side for detail a small ViT does not use.
    let native = min(side, max(imgSize, largestSuggestedImageSize)) / patchSize * patchSize
    let cost = pow(Double(native) / Double(imgSize), 2)
    let what = preset.map { "the \($0) preset trains at \(imgSize) px" } ?? "the pretrained encoder takes \(imgSize) px"
    var fix = ""
    if native > imgSize {
        let their = native < side ? "at up to \(native) px" : "at their size"
        fix = preset != nil
            ? String(format: "pass --img-size %d (a multiple of the patch size %d; about %.1f× the compute per image) to train %@, or --img-size %d to confirm",
                     native, patchSize, cost, their, imgSize)
            : "pretrain with --img-size \(native) to use their detail"
    }
    // Every step decodes its images again: a 5120×2880 PNG costs about half a second of CPU (a JPEG less, scaled while decoding).
    if side >= largeImageSide {
        fix += (fix.isEmpty ? "" : ". ") + "Files this large also take long to decode at every step: shrink copies once and train on "
            + "those (e.g. ImageMagick's `mogrify -path SMALL -resize '512x512^' *.jpg`)"
    }
    return "warning: the images of \(data) are about \(size.width)×\(size.height) px and \(what): every image is scaled down to "
        + "\(imgSize)×\(imgSize), losing detail" + (fix.isEmpty ? "" : "; " + fix)
}

/// The largest `--img-size` the image-size warning suggests.
let largestSuggestedImageSize = 224
/// The shorter side from which the warning suggests shrinking the files (decoding dominates).
let largeImageSide = 1024
