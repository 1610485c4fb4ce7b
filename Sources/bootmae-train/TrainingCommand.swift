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
    TensorRuntime.configure(threads: common.threadsPerProcess)
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

    @Flag(help: "Continue the run in --out from its checkpoint, with its saved recipe (only --threads and --max-steps may be given too).")
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
        try ensure(!(resume && overwrite), "--resume and --overwrite exclude each other")
        try ensure(maxSteps.map { $0 >= 1 } ?? true, "--max-steps must be positive")
        try ensure(epochs.map { $0 >= 1 } ?? true, "--epochs must be positive")
        try ensure(subset.map { $0 >= 1 } ?? true, "--subset must be positive")
        try ensure(threads >= 1, "--threads must be positive")
        if resume {
            // Silently ignoring them would train with other settings than the user asked for.
            let ignored = givenFlags().filter { !Self.resumeFlags.contains($0) }
            try ensure(ignored.isEmpty, "--resume continues the run with the recipe saved in \(out)/recipe.json, so "
                       + "\(ignored.joined(separator: ", ")) cannot change it; drop them, or start a new run (another --out, or --overwrite)")
        }
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

/// The dataset a measurement of `model` reads by default: the one its run trained on (its
/// recipe.json), else Fashion-MNIST.
func defaultDataset(of model: String) -> String {
    struct Recorded: Decodable { let data: String }
    let recipe = URL(fileURLWithPath: model).appendingPathComponent("recipe.json")
    return (try? JSONDecoder().decode(Recorded.self, from: Data(contentsOf: recipe)))?.data ?? CommonTrainingOptions.defaultData
}

/// The long flags on this process's command line after the subcommand ("--lr=1" counts as "--lr"),
/// for rules about flags that carry a default and so cannot be told apart from absent ones.
func givenFlags() -> [String] {
    CommandLine.arguments.dropFirst(2).filter { $0.hasPrefix("--") }.map { String($0.prefix { $0 != "=" }) }
}

/// Throws `message` as a usage error (exit 64) unless `condition` holds.
func ensure(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ValidationError(message()) }
}

/// "1 channel (grayscale)" or "3 channels (RGB)", for run headers.
func channelsText(_ channels: Int) -> String {
    channels == 1 ? "1 channel (grayscale)" : "\(channels) channels (RGB)"
}
