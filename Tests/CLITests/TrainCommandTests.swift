import XCTest
import Foundation
import TestSupport
import ImageKit
import Tensor
import Checkpoint
import Objectives
import ViT

/// `bootmae-train` argument handling that a user meets before any training starts.
final class TrainCommandTests: XCTestCase {
    func testFinetuneNeedsAStartingPointUnlessItResumes() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ft-args-\(UUID())").path
        let fresh = try train.run(["finetune", "--out", out])
        XCTAssertNotEqual(fresh.status, 0)
        XCTAssertTrue(fresh.stderr.contains("--init-from none"), fresh.stderr)
        // With --resume the saved recipe names the start; a folder without a checkpoint is the error then.
        let resume = try train.run(["finetune", "--out", out, "--resume"])
        XCTAssertEqual(resume.status, 1, resume.stderr)
        XCTAssertTrue(resume.stderr.contains("no checkpoint to resume from"), resume.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/recipe.json"), "a failed start writes nothing")
    }

    /// Numbers outside their meaning stop at the command line (usage error, exit 64, naming the
    /// flag) instead of crashing mid-run or training on nonsense.
    func testNonsenseNumbersAreUsageErrors() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bad-numbers-\(UUID())").path
        let cases: [([String], String)] = [
            (["knn", "--model", out, "--k", "0"], "--k"),
            (["knn", "--model", out, "--temperature", "0"], "--temperature"),
            (["linprobe", "--model", out, "--train-subset", "0"], "--train-subset must be positive"),
            (["eval", "--model", out, "--batch-size", "0"], "--batch-size"),
            (["linprobe", "--model", out, "--blr=-1"], "--blr"),
            (["finetune", "--out", out, "--init-from", "none", "--crop-scale", "5"], "--crop-scale"),
            (["finetune", "--out", out, "--init-from", "none", "--label-smoothing", "2"], "--label-smoothing"),
            (["finetune", "--out", out, "--init-from", "none", "--layer-decay=-1"], "--layer-decay"),
            (["pretrain", "--out", out, "--patch-size", "0"], "--patch-size"),
            (["pretrain", "--out", out, "--lr=-1"], "learning rate"),
            (["pretrain", "--out", out, "--ema-start", "5"], "--ema-start"),
            (["pretrain", "--out", out, "--feature-weight=-1"], "--feature-weight"),
            (["pretrain", "--out", out, "--objective", "mae", "--feature-weight", "0.5"], "unknown option '--feature-weight' for objective mae (mae's own options: --masking)"),
            (["pretrain", "--out", out, "--objective", "ibot-typo"], "unknown objective 'ibot-typo'; known objectives: bootmae, mae, ibot"),
            (["pretrain", "--out", out, "--masking", "checkerboard"], "--masking is one of random, block"),
            (["pretrain", "--out", out, "--objective", "ibot", "--local-crops=-1"], "--local-crops cannot be negative"),
            (["pretrain", "--out", out, "--objective", "ibot", "--local-crops", "2", "--local-crop-size", "10",
              "--data", Fixtures.url("datasets/idx-gz").path], "--local-crop-size 10 must be a multiple of the patch size 4"),
            (["pretrain", "--out", out, "--no-weight-mask=yes"], "--no-weight-mask takes no value"),
            (["pretrain", "--out", out, "--ema-end"], "--ema-end needs a value"),
            (["pretrain", "--out", out, "--channels", "2"], "--channels"),
            (["finetune", "--out", out, "--init-from", out, "--channels", "1"], "--channels"),  // a pretrained encoder keeps its own
            (["finetune", "--out", out, "--init-from", out, "--img-size", "84"], "--img-size"),  // and its own size
            (["finetune", "--out", out, "--init-from", "none", "--img-size", "0"], "--img-size must be positive"),
            (["finetune", "--out", out, "--init-from", "none", "--img-size", "30", "--data", Fixtures.url("datasets/idx-gz").path],
             "--img-size 30 must be a positive multiple of the patch size 4"),
            (["pretrain", "--out", out, "--img-szie", "32"], "unknown option '--img-szie'; did you mean '--img-size'?"),
            (["pretrian", "--out", out], "unknown command 'pretrian'; did you mean 'pretrain'?"),
            (["linprobe-x", "--model", out], "unknown command 'linprobe-x'; did you mean 'linprobe'?"),
            (["pretrain", "--out", out, "--resume", "--overwrite"], "drop --overwrite to continue the run"),
            (["eval", "--model", Fixtures.url("encoders/timm_qkv_cls").path, "--mask-ratio", "0.75", "--data", Fixtures.url("datasets/idx-gz").path],
             "--masking and --mask-ratio choose reconstruction masks"),
        ]
        for (arguments, flag) in cases {
            let result = try train.run(arguments)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(flag), "\(arguments): \(result.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is created")
    }

    /// --resume trains on with the saved recipe: the identical command line plus --resume continues
    /// it, flags that would change it are refused naming both values (not silently ignored), and
    /// resuming a finished run leaves its results as they are.
    func testResumeKeepsTheRecipeAndLeavesAFinishedRunAlone() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let data = Fixtures.url("datasets/idx-gz").path  // 20 train images (2 steps of 8), 6 test images
        let command = ["pretrain", "--data", data, "--out", out, "--epochs", "2", "--batch-size", "8", "--threads", "1",
                       "--feature-weight", "0.5", "--ema-start=0.99", "--seed", "3"]
        let first = try train.run(command + ["--max-steps", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("1 channel (grayscale), 20 images"), first.stderr)

        let refused: [([String], [String])] = [
            (["--epochs", "3", "--lr=1e-3"], ["--epochs: recorded 2, given 3", "--lr: recorded 4.6875e-06, given 0.001"]),
            (["--feature-weight", "1"], ["--feature-weight: recorded 0.5, given 1"]),   // an objective's own flag, at its default
            (["--no-weight-mask"], ["weight_mask: recorded true, given false"]),
            (["--objective", "mae"], ["--objective: recorded bootmae, given mae"]),
            (["--preset", "small"], ["--preset: recorded 128, given 192"]),
            (["--batch-size", "4", "--seed", "3"], ["--batch-size: recorded 8, given 4"]),
        ]
        for (flags, expected) in refused {
            let changed = try train.run(["pretrain", "--out", out, "--resume"] + flags)
            XCTAssertEqual(changed.status, 64, "\(flags): \(changed.stderr)")
            for text in expected { XCTAssertTrue(changed.stderr.contains(text), "\(flags): \(changed.stderr)") }
            XCTAssertTrue(changed.stderr.contains("start a new run"), changed.stderr)
        }
        // Flags equal to the recorded ones (some of them, or the whole first command line) continue the run.
        let some = try train.run(["pretrain", "--out", out, "--resume", "--ema-start", "0.99", "--epochs", "2", "--max-steps", "1"])
        XCTAssertEqual(some.status, 0, some.stderr)
        XCTAssertTrue(some.stderr.contains("resuming at step 1 of 4"), some.stderr)
        let same = try train.run(command + ["--resume"])
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertTrue(same.stderr.contains("resuming at step 2 of 4"), same.stderr)

        let result = try Data(contentsOf: URL(fileURLWithPath: out + "/result.json"))
        let again = try train.run(["pretrain", "--out", out, "--resume", "--threads", "1"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("already finished"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/result.json")), result, "result.json untouched")

        // Measurements of a run default to the dataset it trained on, not to Fashion-MNIST.
        let measured = try train.run(["eval", "--model", out, "--threads", "1"])
        XCTAssertEqual(measured.status, 0, measured.stderr)
        XCTAssertTrue(measured.stdout.contains("\"images\" : 6"), measured.stdout)
    }

    /// A run whose loss stops being a number stops in that step with advice a user can follow (a new
    /// run with a lower learning rate: `--resume` refuses a changed one, and the same recipe would replay
    /// the same steps) and exit 1; its folder keeps the checkpoint saved before that step (finite
    /// weights, the step before the one named) and gets no result.
    func testADivergingRunStopsWithAdviceAndKeepsItsLastCheckpoint() throws {
        let train = try BuiltExecutable("bootmae-train")
        let data = Fixtures.url("datasets/idx-gz").path  // 20 train images: 2 steps of 8 per epoch
        // A learning rate of 1e30 leaves the first step's loss finite and sends every weight to ~1e30.
        for (command, flags, advice) in [("pretrain", ["--objective", "mae"], "lower --lr or more --warmup-epochs"),
                                         ("finetune", ["--init-from", "none"], "lower --lr (or --blr) or more --warmup-epochs")] {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("diverge-\(command)-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let result = try train.run([command, "--data", data, "--out", out, "--epochs", "3", "--batch-size", "8", "--threads", "1",
                                        "--lr", "1e30", "--warmup-epochs", "0", "--checkpoint-every", "1"] + flags)
            XCTAssertEqual(result.status, 1, "\(command): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("training diverged. Start a new run with a \(advice)"), "\(command): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("the run folder keeps its last checkpoint as it was, if one was saved"), result.stderr)
            let named = result.stderr.firstMatch(of: /the loss became (?:NaN|[-+]?inf) in step (\d+) of 6 \(learning rate/).flatMap { Int($0.1) }
            guard let named else { return XCTFail("\(command): no step named in \(result.stderr)") }
            XCTAssertGreaterThan(named, 1, "\(command): the first step's loss is finite")

            let checkpoint = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: out + "/checkpoint.safetensors"))
            XCTAssertEqual(checkpoint.metadata["step"], String(named - 1), command)
            for name in checkpoint.names where !name.hasPrefix("optim.") {
                let tensor = try checkpoint.tensor(name)
                XCTAssertTrue(tensor.data.allSatisfy(\.isFinite), "\(command): \(name) is not finite")
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: out)
            XCTAssertFalse(files.contains("result.json"), "\(command): \(files)")
            XCTAssertTrue(files.allSatisfy { !$0.contains(".tmp-") }, "\(command): a temporary file is left: \(files)")
        }
    }

    /// While a trainer works in a folder and has not saved its first checkpoint, `export` and a
    /// `--resume` say so, naming its process, instead of calling the folder one without a run; they
    /// learn it from the pid in the lock file, without taking the lock (the trainer is undisturbed:
    /// SIGTERM still saves its checkpoint afterwards).
    func testAFolderWhoseTrainerHasNotSavedYetIsNamedAsSuch() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("unsaved-\(UUID())").path
        defer { for suffix in ["", "-export", "-ft"] { try? FileManager.default.removeItem(atPath: out + suffix) } }
        let trainer = Process()
        trainer.executableURL = train.url
        trainer.arguments = ["pretrain", "--objective", "mae", "--data", Fixtures.url("datasets/idx-gz").path, "--out", out,
                             "--epochs", "1000", "--batch-size", "8", "--threads", "1", "--checkpoint-every", "100000"]
        trainer.standardOutput = FileHandle.nullDevice
        trainer.standardError = FileHandle.nullDevice
        try trainer.run()
        defer { if trainer.isRunning { trainer.terminate() }; trainer.waitUntilExit() }
        let pid = trainer.processIdentifier
        func holds() -> Bool {
            FileManager.default.fileExists(atPath: out + "/recipe.json")
                && (try? String(contentsOfFile: out + "/.lock", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == String(pid)
        }
        let deadline = Date().addingTimeInterval(60)
        while !holds() {
            guard trainer.isRunning, Date() < deadline else { return XCTFail("the trainer never took \(out)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let expected = "another bootmae-train process (pid \(pid)) is training in it and has not saved its first one"
        let export = try train.run(["export", "--run", out, "--out", out + "-export"])
        XCTAssertNotEqual(export.status, 0, export.stderr)
        XCTAssertTrue(export.stderr.contains(expected), export.stderr)
        let resume = try train.run(["pretrain", "--out", out, "--resume", "--threads", "1"])
        XCTAssertNotEqual(resume.status, 0, resume.stderr)
        XCTAssertTrue(resume.stderr.contains(expected), resume.stderr)
        // Measuring it, or fine-tuning from it, says the same instead of "cannot read model.safetensors".
        for command in [["eval", "--model", out, "--threads", "1"], ["knn", "--model", out, "--threads", "1"],
                        ["finetune", "--init-from", out, "--out", out + "-ft", "--threads", "1"]] {
            let early = try train.run(command)
            XCTAssertNotEqual(early.status, 0, "\(command): \(early.stderr)")
            XCTAssertTrue(early.stderr.contains(expected), "\(command): \(early.stderr)")
        }

        trainer.terminate()   // SIGTERM: the trainer saves a checkpoint and stops
        trainer.waitUntilExit()
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors"), "SIGTERM saved a checkpoint")
        let resumed = try train.run(["pretrain", "--out", out, "--resume", "--threads", "1", "--max-steps", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)

        // A live process that is not a trainer (this test runner) in the lock file of a folder without
        // a checkpoint: a pid reused since the trainer died, not a trainer at work.
        let stale = out + "-stale"
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: stale) }
        try Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: stale + "/.lock"))
        let reused = try train.run(["export", "--run", stale, "--out", stale + "-export"])
        XCTAssertNotEqual(reused.status, 0, reused.stderr)
        XCTAssertFalse(reused.stderr.contains("another bootmae-train process"), reused.stderr)
        XCTAssertTrue(reused.stderr.contains("holds no checkpoint.safetensors"), reused.stderr)
    }

    /// `eval` of a LoMaR run scores its own task by default (windows, 12 of 16 masked in each 4×4
    /// window of the 7×7 grid), not a mask over the whole image; `--masking random --mask-ratio 0.75`
    /// hides 37 of 49 patches, MAE's and BootMAE's count, not LoMaR's own 40; a ratio alone is
    /// refused, since a share of the image does not describe windows.
    func testLoMaREvalMasks() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("lomar-eval-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let data = Fixtures.url("datasets/idx-gz").path  // 28 px, 6 test images
        let pretrain = try train.run(["pretrain", "--objective", "lomar", "--data", data, "--out", out, "--epochs", "1",
                                      "--batch-size", "8", "--max-steps", "1", "--threads", "1"])
        XCTAssertEqual(pretrain.status, 0, pretrain.stderr)
        func eval(_ flags: [String]) throws -> [String: Any] {
            let result = try train.run(["eval", "--model", out, "--threads", "1", "--out", out + "/e.json"] + flags)
            XCTAssertEqual(result.status, 0, "\(flags): \(result.stderr)")
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        let own = try eval([])
        XCTAssertEqual(own["masking"] as? String, "windows")
        XCTAssertEqual(own["maskRatio"] as? Double, 0.75)
        XCTAssertEqual(own["predictedPatches"] as? Int, 6 * 4 * 12)
        let whole = try eval(["--masking", "random"])
        XCTAssertEqual(whole["masking"] as? String, "random")
        XCTAssertEqual(try XCTUnwrap(whole["maskRatio"] as? Double), 40.0 / 49.0, accuracy: 1e-12, "LoMaR's own share of the image")
        XCTAssertNil(whole["predictedPatches"])
        let equal = try eval(["--masking", "random", "--mask-ratio", "0.75"])
        XCTAssertEqual(try XCTUnwrap(equal["maskRatio"] as? Double), 37.0 / 49.0, accuracy: 1e-12, "MAE's and BootMAE's count")
        XCTAssertNotEqual(equal["psnr"] as? Double, whole["psnr"] as? Double)

        let alone = try train.run(["eval", "--model", out, "--threads", "1", "--mask-ratio", "0.75"])
        XCTAssertEqual(alone.status, 64, alone.stderr)
        XCTAssertTrue(alone.stderr.contains("add --masking random or block"), alone.stderr)
        let outside = try train.run(["eval", "--model", out, "--threads", "1", "--masking", "random", "--mask-ratio", "1"])
        XCTAssertEqual(outside.status, 64, outside.stderr)
        XCTAssertTrue(outside.stderr.contains("--mask-ratio must be within (0, 1)"), outside.stderr)
    }

    /// Every command the `lomar` stream runs (scripts/fmnist-experiments.sh: `pretrained_stream lomar`,
    /// then `export-lomar`), with its flags, once, at the fixture's scale: its batch of 256 becomes 8
    /// (20 training images), `--max-steps` stops each training run after 2 steps, and only the pretraining
    /// names the data (the rest default to the run's own, as in the stream). Each must exit 0 and write
    /// what the stream's next step or docs/RESULTS.md reads; the fine-tune is an RPE-only classifier.
    func testTheLoMaRStreamCommandsRun() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("lomar-stream-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let (pt, ft) = (root.appendingPathComponent("lomar-tiny").path, root.appendingPathComponent("lomar-tiny-ft").path)
        let data = Fixtures.url("datasets/idx-gz").path  // 28 px: 20 train images, 6 test images
        func run(_ arguments: [String]) throws -> String {
            // As the stream: every command but export computes with --threads.
            let result = try train.run(arguments + (arguments[0] == "export" ? [] : ["--threads", "1"]))
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            return result.stdout
        }
        func json(_ path: String) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any], path)
        }
        // LOMAR_PRETRAIN, batch 256 → 8.
        _ = try run(["pretrain", "--out", pt, "--objective", "lomar", "--preset", "tiny", "--epochs", "40", "--batch-size", "8", "--lr", "5e-4",
                     "--min-lr", "2.0833333333333333e-05", "--warmup-epochs", "2", "--checkpoint-every", "100", "--seed", "0",
                     "--data", data, "--max-steps", "2"])
        _ = try run(["eval", "--model", pt])
        XCTAssertEqual(try json(pt + "/eval.json")["masking"] as? String, "windows")
        _ = try run(["eval", "--model", pt, "--masking", "random", "--mask-ratio", "0.75", "--out", pt + "/eval-random.json"])
        XCTAssertTrue((try json(pt + "/eval-random.json")["psnr"] as? Double)?.isFinite ?? false)
        _ = try run(["knn", "--model", pt])
        _ = try run(["linprobe", "--model", pt])
        for file in ["knn", "linprobe"] {
            let result = try json("\(pt)/\(file).json")
            XCTAssertEqual(result["testCount"] as? Int, 6, file)
            XCTAssertTrue((result["top1"] as? Double)?.isFinite ?? false, "\(file): \(result)")
        }
        // FINETUNE, batch 256 → 8.
        _ = try run(["finetune", "--out", ft, "--init-from", pt, "--epochs", "20", "--batch-size", "8", "--crop-scale", "0.8",
                     "--checkpoint-every", "200", "--seed", "0", "--max-steps", "2"])
        let config = try json(ft + "/config.json")
        XCTAssertEqual(config["relative_position"] as? String, "irpe_product_k")
        XCTAssertEqual(config["pos_embed"] as? String, "none")
        _ = try run(["eval", "--model", ft])
        let top1 = try XCTUnwrap(try json(ft + "/eval.json")["top1"] as? Double)
        XCTAssertTrue(top1.isFinite && (0...1).contains(top1), "\(top1)")

        // export-lomar's command, and the fine-tune's export evaluated as the shipped classifiers are.
        let card = ShippedServer.repository.appendingPathComponent("scripts/cards/lomar-vit-tiny-fmnist.md").path
        let models = root.appendingPathComponent("models")
        _ = try run(["export", "--run", pt, "--out", models.appendingPathComponent("lomar-vit-tiny-fmnist").path, "--half", "--overwrite",
                     "--domain", "Fashion-MNIST garments", "--limitations", card])
        let exportedFT = models.appendingPathComponent("lomar-vit-tiny-fmnist-cls").path
        _ = try run(["export", "--run", ft, "--out", exportedFT, "--half", "--overwrite", "--domain", "Fashion-MNIST garments"])
        XCTAssertEqual(try json(exportedFT + "/config.json")["relative_position"] as? String, "irpe_product_k")
        _ = try run(["eval", "--model", exportedFT, "--data", data])
        XCTAssertTrue((try json(exportedFT + "/eval.json")["top1"] as? Double)?.isFinite ?? false)
    }

    /// A small folder of larger photos, as a new user brings one: a batch bigger than the data names
    /// --batch-size and a value that works; without one, a batch is chosen from the data (and said),
    /// with the base learning rate unscaled (and said); a batch given by the user keeps the linear rule
    /// and its small-rate warning; the downscaled images and the files that are not images are warned
    /// about; a fine-tune from the run reads the run's own folder, and resuming it with the same flags
    /// is accepted.
    func testASmallFolderOfPhotos() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("photos-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (split, count) in [("train", 6), ("test", 2)] {
            for (c, name) in ["cat", "dog"].enumerated() {
                try FileManager.default.createDirectory(atPath: "\(root)/\(split)/\(name)", withIntermediateDirectories: true)
                for i in 0..<count {
                    let pixels = (0..<(64 * 64 * 3)).map { UInt8(truncatingIfNeeded: $0 * (i + 3) + c * 91) }
                    let png = try PNGEncoder.encode(Image(width: 64, height: 64, channels: 3, pixels: pixels))
                    try Data(png).write(to: URL(fileURLWithPath: "\(root)/\(split)/\(name)/\(i).png"))
                }
            }
        }
        try Data("GIF89a".utf8).write(to: URL(fileURLWithPath: root + "/train/cat/anim.gif"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/train/dog/notes.txt"))
        let pt = root + "/runs/pt", ft = root + "/runs/ft"

        let tooBig = try train.run(["pretrain", "--data", root, "--out", pt, "--batch-size", "256", "--threads", "1"])
        XCTAssertEqual(tooBig.status, 64, tooBig.stderr)
        XCTAssertTrue(tooBig.stderr.contains("--batch-size 256 is more than the 12 training images"), tooBig.stderr)
        XCTAssertTrue(tooBig.stderr.contains("pass --batch-size 8"), tooBig.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pt), "nothing is created")

        let pretrain = try train.run(["pretrain", "--data", root, "--out", pt, "--epochs", "1", "--threads", "1"])
        XCTAssertEqual(pretrain.status, 0, pretrain.stderr)
        for text in ["batch 8: chosen for 12 training images (1 steps per epoch; --batch-size to change)",
                     "learning rate 0.00015: the base rate, unscaled, as the batch was chosen for a small dataset",
                     "base × 8 / 256 = 4.69e-06", "--lr to choose another",
                     "about 64×64 px and the tiny preset trains at 28 px", "--img-size 64",
                     "warning: 2 files are not PNG/JPEG and not used", "anim.gif"] {
            XCTAssertTrue(pretrain.stderr.contains(text), "\(text): \(pretrain.stderr)")
        }

        let recipe = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: pt + "/recipe.json"))) as? [String: Any])
        XCTAssertEqual(recipe["lr"] as? Double, 1.5e-4, "the chosen batch takes BootMAE's base rate unscaled")
        // A batch the user gives keeps the linear rule, and a small one is warned about.
        let given = try train.run(["pretrain", "--data", root, "--out", root + "/runs/pt-given", "--batch-size", "8", "--max-steps", "1", "--threads", "1"])
        XCTAssertEqual(given.status, 0, given.stderr)
        XCTAssertTrue(given.stderr.contains("warning: the peak learning rate is 4.69e-06"), given.stderr)
        XCTAssertFalse(given.stderr.contains("chosen for"), given.stderr)
        // --blr on --resume means the recorded rate under whichever rule gave it (here the linear one,
        // though this command line gives no --batch-size).
        let resumedWithBase = try train.run(["pretrain", "--out", root + "/runs/pt-given", "--resume", "--blr", "1.5e-4",
                                             "--max-steps", "1", "--threads", "1"])
        XCTAssertEqual(resumedWithBase.status, 0, resumedWithBase.stderr)
        let changedBase = try train.run(["pretrain", "--out", root + "/runs/pt-given", "--resume", "--blr", "3e-4", "--threads", "1"])
        XCTAssertEqual(changedBase.status, 64, changedBase.stderr)
        XCTAssertTrue(changedBase.stderr.contains("--blr: recorded"), changedBase.stderr)

        let finetune = ["finetune", "--init-from", pt, "--out", ft, "--epochs", "2", "--threads", "1", "--lr", "1e-3"]
        let first = try train.run(finetune + ["--max-steps", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("data: \(root) (what \(pt) trained on; --data to change)"), first.stderr)
        XCTAssertTrue(first.stderr.contains("12 images in 2 classes"), first.stderr)
        XCTAssertFalse(first.stderr.contains("peak learning rate"), "--lr was given: \(first.stderr)")
        let resumed = try train.run(finetune + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let changed = try train.run(["finetune", "--out", ft, "--resume", "--init-from", "none", "--layer-decay", "0.5"])
        XCTAssertEqual(changed.status, 64, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("--layer-decay: recorded 0.75, given 0.5"), changed.stderr)
        XCTAssertTrue(changed.stderr.contains("--init-from: recorded \(pt), given none"), changed.stderr)
    }

    /// Photos far larger than any useful input (a 1,200 px side here): the warning suggests training
    /// at up to 224 px, not at their size, and shrinking copies of the files, whose decoding would
    /// dominate every step.
    func testHugePhotosGetAdviceThatScales() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("huge-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/photos", withIntermediateDirectories: true)
        let png = try PNGEncoder.encode(Image(width: 1300, height: 1200, channels: 3, pixels: [UInt8](repeating: 90, count: 1300 * 1200 * 3)))
        try Data(png).write(to: URL(fileURLWithPath: root + "/photos/big.png"))
        let result = try train.run(["pretrain", "--data", root + "/photos", "--out", root + "/run", "--epochs", "1", "--max-steps", "1", "--threads", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for text in ["about 1300×1200 px and the tiny preset trains at 28 px", "pass --img-size 224",
                     "to train at up to 224 px", "shrink copies once"] {
            XCTAssertTrue(result.stderr.contains(text), "\(text): \(result.stderr)")
        }
        XCTAssertFalse(result.stderr.contains("--img-size 1200"), result.stderr)
    }

    /// k-NN on part of the train split (`--train-subset`): the bank holds that many images, spread
    /// over the split, and the test split stays whole.
    func testKNNOnATrainSubset() throws {
        let train = try BuiltExecutable("bootmae-train")
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("knn-subset-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: run) }
        let data = Fixtures.url("datasets/idx-gz").path  // 20 train images, 6 test images
        let pretrain = try train.run(["pretrain", "--data", data, "--out", run, "--epochs", "1", "--batch-size", "8", "--threads", "1", "--max-steps", "1"])
        XCTAssertEqual(pretrain.status, 0, pretrain.stderr)
        let knn = try train.run(["knn", "--model", run, "--train-subset", "8", "--threads", "1"])
        XCTAssertEqual(knn.status, 0, knn.stderr)
        struct Counts: Decodable { let trainCount: Int; let testCount: Int }
        let counts = try JSONDecoder().decode(Counts.self, from: Data(contentsOf: URL(fileURLWithPath: run).appendingPathComponent("knn.json")))
        XCTAssertEqual(counts.trainCount, 8)
        XCTAssertEqual(counts.testCount, 6)
    }

    /// A from-scratch fine-tune at another input size (the 84 px baseline of the LoMaR comparison):
    /// the model is built at that size, the 28 px images are resized to it, and a resume that names
    /// another size is refused with both values.
    func testScratchFinetuneAtAnotherImageSize() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("scratch-size-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let command = ["finetune", "--init-from", "none", "--img-size", "32", "--data", Fixtures.url("datasets/idx-gz").path,
                       "--out", out, "--epochs", "1", "--batch-size", "8", "--threads", "1"]
        let first = try train.run(command + ["--max-steps", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        struct Size: Decodable { let img_size: Int }
        let config = try JSONDecoder().decode(Size.self, from: Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("config.json")))
        XCTAssertEqual(config.img_size, 32)
        let changed = try train.run(["finetune", "--out", out, "--resume", "--img-size", "28"])
        XCTAssertEqual(changed.status, 64, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("--img-size: recorded 32, given 28"), changed.stderr)
    }

    /// The PeCo tests' backbone: 28 px gray at patch 7 (a 4×4 grid), one block 16 wide.
    static let pecoShape = BackboneShape(imgSize: 28, patchSize: 7, channels: 1, embedDim: 16, depth: 1, numHeads: 2, decoderDim: 16,
                                         decoderDepth: 1, deepDecoderDepth: 1)

    /// A PeCo tokenizer of 8 codes with random weights (and a random codebook: `initialize` leaves
    /// it at zero) written as a model directory; returns its encoder, which stage 2 must match.
    @discardableResult
    func saveTokenizer(to dir: URL, seed: UInt64) throws -> ViTConfig {
        let (encoder, _) = try PeCoTokenizer.configure(Self.pecoShape, maskRatio: 0, flags: ObjectiveFlagValues())
        let tok = PretrainingNetwork(config: PretrainingConfig(PeCoTokenizer.self, encoder: encoder, settings: .init(
            codebookSize: 8, codeDim: 4, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2, lambdaPerceptual: 0)))
        tok.initialize(seed: seed)
        var rng = SeededRandom(seed: seed + 1)
        (tok.objective as! PeCoTokenizer).quantizer.codebook.fill { rng.normal() }
        try PretrainingDirectory.save(tok, to: dir)
        return encoder
    }

    /// `eval` of a PeCo stage-2 model (no pixel decoder of its own) scores what the server serves:
    /// its predicted codes decoded by the tokenizer its config names, here an exported config's
    /// directory name resolved beside the model, and only when that tokenizer has the recorded hash.
    func testPeCoEvalDecodesThroughItsTokenizer() throws {
        let train = try BuiltExecutable("bootmae-train")
        let models = FileManager.default.temporaryDirectory.appendingPathComponent("peco-eval-\(UUID())")
        defer { try? FileManager.default.removeItem(at: models) }
        let tokEncoder = try saveTokenizer(to: models.appendingPathComponent("tok"), seed: 3)
        let digest = SHA256.hex(try SHA256.digest(ofFile: models.appendingPathComponent("tok/model.safetensors").path))
        func stage2(_ name: String, tokenizer: String, sha256: String) throws -> String {
            var (encoder, _) = try PeCo.configure(Self.pecoShape, maskRatio: 0.4, flags: ObjectiveFlagValues())
            (encoder.mean, encoder.std) = (tokEncoder.mean, tokEncoder.std)
            let net = PretrainingNetwork(config: PretrainingConfig(PeCo.self, encoder: encoder, settings: .init(
                vocabSize: 8, numMaskPatches: 6, tokenizer: tokenizer, tokenizerSHA256: sha256)))
            net.initialize(seed: 5)
            try PretrainingDirectory.save(net, to: models.appendingPathComponent(name))
            return models.appendingPathComponent(name).path
        }
        let data = Fixtures.url("datasets/idx-gz").path  // 28 px, 6 test images
        let peco = try stage2("peco", tokenizer: "tok", sha256: digest)
        let measured = try train.run(["eval", "--model", peco, "--data", data, "--threads", "1"])
        XCTAssertEqual(measured.status, 0, measured.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(measured.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["tokenizer"] as? String, "tok")
        XCTAssertEqual(json["masking"] as? String, "block")
        XCTAssertEqual(json["images"] as? Int, 6)
        XCTAssertTrue((json["psnr"] as? Double).map { $0.isFinite && $0 > 0 } ?? false, measured.stdout)
        XCTAssertTrue(measured.stderr.contains("decoded by the tokenizer tok"), measured.stderr)

        let stale = try stage2("peco-stale", tokenizer: "tok", sha256: String(repeating: "ab", count: 32))
        let refused = try train.run(["eval", "--model", stale, "--data", data, "--threads", "1"])
        XCTAssertEqual(refused.status, 65, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("is not the one") && refused.stderr.contains(String(digest.prefix(12)))
                      && refused.stderr.contains("abababababab"), refused.stderr)
        let orphan = try stage2("peco-orphan", tokenizer: "missing-tok", sha256: digest)
        let missing = try train.run(["eval", "--model", orphan, "--data", data, "--threads", "1"])
        XCTAssertEqual(missing.status, 66, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("missing-tok"), missing.stderr)
    }

    /// `eval` of a stage-2 run folder draws the masks its training drew: BEiT's generator with the
    /// block options of the run's recipe.json, while its export, which keeps no recipe.json, draws
    /// them with the default options, as the server does. Reference: the masks a training step of
    /// the run plans (`PretrainingNetwork.plan`, PeCo's `plan`) from eval's random stream for its one
    /// batch of the 6 test images. Blocks of at least 12 of the 16 patches often fit no 2×3 block
    /// within 10 attempts and hide nothing (6 images: 6,0,… at seed 0), where the defaults' 1-patch
    /// blocks always reach the 6 aimed for: the masked share tells which options the eval drew with,
    /// and the run and its export (the same weights) score differently.
    func testPeCoEvalDrawsTheRunsTrainingMasks() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("peco-eval-recipe-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let tok = root.appendingPathComponent("tok")   // an export's name, so the stage-2 export finds it beside itself
        try saveTokenizer(to: tok, seed: 3)
        let run = root.appendingPathComponent("stage2").path, exported = root.appendingPathComponent("stage2-export").path
        let data = Fixtures.url("datasets/idx-gz").path  // 28 px, 6 test images: one eval batch
        let started = try train.run(["pretrain", "--objective", "peco", "--patch-size", "7", "--tokenizer", tok.path,
                                     "--min-mask-patches-per-block", "12", "--data", data, "--batch-size", "2", "--epochs", "1",
                                     "--max-steps", "1", "--out", run, "--threads", "1"])
        XCTAssertEqual(started.status, 0, started.stderr)
        let export = try train.run(["export", "--run", run, "--out", exported])
        XCTAssertEqual(export.status, 0, export.stderr)

        let seed: UInt64 = 0
        let network = PretrainingNetwork(config: try PretrainingDirectory.readConfig(URL(fileURLWithPath: run)))
        let patches = network.config.encoder.numPatches
        XCTAssertEqual(patches, 16)
        /// The share of the 6 images' patches a training step's masks hide, drawn as eval draws its first batch.
        func trainingShare(_ options: PeCo.Options) throws -> Double {
            var rng = SeededRandom(seed: seed, stream: 0)
            let plan = try XCTUnwrap(network.plan(batch: 6, rng: &rng, options: options,
                                                  clock: TrainingClock(step: 0, stepsPerEpoch: 1, epochs: 1)) as? PeCoPlan)
            return Double(plan.masks.joined().filter { $0 }.count) / Double(6 * patches)
        }
        let recipeShare = try trainingShare(PeCo.Options(minMaskPatchesPerBlock: 12))
        let defaultShare = try trainingShare(PeCo.Options())
        XCTAssertNotEqual(recipeShare, defaultShare, "the test needs a seed where the two option sets hide different shares")

        func eval(_ model: String, _ flags: [String] = []) throws -> [String: Any] {
            let result = try train.run(["eval", "--model", model, "--data", data, "--seed", "\(seed)", "--threads", "1",
                                        "--out", root.appendingPathComponent("eval-\(UUID()).json").path] + flags)
            XCTAssertEqual(result.status, 0, result.stderr)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        let ofRun = try eval(run)
        XCTAssertEqual(try XCTUnwrap(ofRun["maskRatio"] as? Double), recipeShare, accuracy: 1e-12, "the run's recipe options")
        XCTAssertEqual(ofRun["masking"] as? String, "block")
        let ofExport = try eval(exported)
        XCTAssertEqual(try XCTUnwrap(ofExport["maskRatio"] as? Double), defaultShare, accuracy: 1e-12, "an export: the default options")
        XCTAssertNotEqual(ofRun["psnr"] as? Double, ofExport["psnr"] as? Double, "other masks, other scores")
        XCTAssertEqual(ofRun["maskingDetail"] as? String, "BEiT block masks with the run's options: blocks of at least 12 patches, aspect 0.3 to 3.33")
        XCTAssertEqual(ofExport["maskingDetail"] as? String, "BEiT block masks with the default options: blocks of at least 1 patch, aspect 0.3 to 3.33")
        // Naming its own masking (block) draws the same training masks, as the server does; another
        // masking is a whole-image mask of the asked share, the same for every objective.
        let named = try eval(run, ["--masking", "block"])
        for key in ["masking", "maskingDetail", "maskRatio", "psnr"] {
            XCTAssertEqual(named[key] as? NSObject, ofRun[key] as? NSObject, "--masking block: \(key) as without it")
        }
        let random = try eval(run, ["--masking", "random", "--mask-ratio", "0.75"])
        XCTAssertEqual(random["masking"] as? String, "random")
        XCTAssertEqual(try XCTUnwrap(random["maskRatio"] as? Double), 12.0 / 16.0, accuracy: 1e-12)
        XCTAssertNil(random["maskingDetail"])

        // A recipe.json of another objective is a broken run folder: said, not measured on the defaults.
        let recipe = URL(fileURLWithPath: run).appendingPathComponent("recipe.json")
        var fields = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: recipe)) as? [String: Any])
        XCTAssertEqual(fields["objective"] as? String, "peco")
        (fields["objective"], fields["objective_options"]) = ("mae", ["masking": "random"])
        try JSONSerialization.data(withJSONObject: fields).write(to: recipe)
        let refused = try train.run(["eval", "--model", run, "--data", data, "--threads", "1", "--out", root.appendingPathComponent("refused.json").path])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("recipe.json is a recipe for mae, but the run's config.json is a peco network"), refused.stderr)
    }

    /// A stage 2 records its tokenizer's SHA-256 when it starts; resumed after that export changed,
    /// it stops before training with the message (not a trap at its first step).
    func testPeCoResumeRefusesAChangedTokenizer() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("peco-resume-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        try saveTokenizer(to: root.appendingPathComponent("tok"), seed: 3)
        let run = root.appendingPathComponent("stage2").path
        let data = Fixtures.url("datasets/idx-gz").path
        let started = try train.run(["pretrain", "--objective", "peco", "--patch-size", "7", "--tokenizer", root.appendingPathComponent("tok").path,
                                     "--data", data, "--batch-size", "2", "--epochs", "1", "--max-steps", "1", "--out", run, "--threads", "1"])
        XCTAssertEqual(started.status, 0, started.stderr)
        XCTAssertEqual(try train.run(["pretrain", "--out", run, "--resume", "--max-steps", "1", "--threads", "1"]).status, 0, "unchanged: resumes")
        try saveTokenizer(to: root.appendingPathComponent("tok"), seed: 9)
        let refused = try train.run(["pretrain", "--out", run, "--resume", "--max-steps", "1", "--threads", "1"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("changed since this run was configured") && refused.stderr.contains("restore the export"), refused.stderr)
    }
}
