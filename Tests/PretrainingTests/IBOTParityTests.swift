import XCTest
import Tensor
import ViT
@testable import Objectives
import Checkpoint
import TestSupport

/// One iBOT step against the PyTorch reference built from the official code's functions
/// (tools/reference/make_ibot_fixtures.py; bytedance/ibot main_ibot.py `iBOTLoss`, models/head.py,
/// models/vision_transformer.py): the same weights, crops and masks give the same losses (≤ 1e-5
/// relative), every student gradient (≤ 1e-4 relative to the tensor's largest entry), and after
/// `afterStep` (no optimizer step in between) the same centres and EMA teacher (≤ 1e-6). With 2
/// local crops of 8 pixels (io_local.safetensors) the [CLS] loss and every gradient, pos_embed's
/// through the position interpolation included, against the same reference.
final class IBOTParityTests: XCTestCase {
    static let dir = "pretrain/ibot_tiny"

    func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let e = relativeError(a, b)
        XCTAssertLessThanOrEqual(e, tol, "\(what): relative error \(e)", file: file, line: line)
    }

    /// The crops as one view group (view-major), the local crops (if any) as a second, and the
    /// masks as a hand-made plan.
    func inputs(localImages: Tensor? = nil, localViews: Int = 0) throws -> (PretrainingBatch, IBOTPlan) {
        let io = try Fixtures.file("\(Self.dir)/io.safetensors")
        let images = try io.tensor("images")
        let (shape, flags) = try io.integers("masks")            // (views, B, H, W), 1 = masked
        let (views, count) = (shape[0], shape[1])
        let n = shape[2] * shape[3]
        let masks = (0..<(views * count)).map { crop in flags[(crop * n)..<((crop + 1) * n)].map { $0 != 0 } }
        XCTAssertEqual(images.shape[0], views * count)
        var groups = [PretrainingBatch.Group(views: views, images: images)]
        if let localImages { groups.append(.init(views: localViews, images: localImages)) }
        return (PretrainingBatch(groups: groups), IBOTPlan(views: views, count: count, masks: masks))
    }

    /// The loss options a reference was written with (its metadata, official argument names):
    /// temperatures, their warmup and the teacher momentum.
    static func lossOptions(_ io: SafeTensorsFile) throws -> IBOT.Options {
        func meta(_ key: String) throws -> Double { try XCTUnwrap(io.meta(key), "metadata \(key)") }
        var o = IBOT.Options(warmupTeacherTempEpochs: Int(try meta("warmup_teacher_temp_epochs")))
        o.studentTemp = try meta("student_temp")
        o.warmupTeacherTemp = try meta("warmup_teacher_temp")
        o.teacherTemp = try meta("teacher_temp")
        o.warmupTeacherPatchTemp = try meta("warmup_teacher_patch_temp")
        o.teacherPatchTemp = try meta("teacher_patch_temp")
        o.momentumTeacher = try meta("momentum_teacher")
        return o
    }

    /// The reference's schedules: teacher temperatures per epoch, momentum per iteration.
    func options(_ io: SafeTensorsFile) throws -> (IBOT.Options, TrainingClock) {
        func meta(_ key: String) throws -> Double { try XCTUnwrap(io.meta(key), key) }
        let o = try Self.lossOptions(io)
        let clock = TrainingClock(step: Int(try meta("iteration")), stepsPerEpoch: Int(try meta("iters_per_epoch")),
                                  epochs: Int(try meta("epochs")))
        XCTAssertEqual(clock.epoch, Int(try meta("epoch")))
        let t = o.temperatures(at: clock)
        XCTAssertEqual(t.teacherCls, Float(try meta("teacher_temp_cls")), accuracy: 1e-7)
        XCTAssertEqual(t.teacherPatch, Float(try meta("teacher_temp_patch")), accuracy: 1e-7)
        XCTAssertEqual(t.student, Float(try meta("student_temp")))
        XCTAssertEqual(o.momentum(at: clock), try meta("momentum"), accuracy: 1e-12)
        return (o, clock)
    }

    /// Runs the step (whole batch, or in shards of images as `DataParallelStep` would) and
    /// `afterStep`, and compares everything with `io`; the centres and teacher after the step with
    /// `after` (default `io`). With `local`, the step has io's local crops too.
    func check(_ network: PretrainingNetwork, _ io: SafeTensorsFile, after: SafeTensorsFile? = nil, local: Bool = false,
               shards: [Range<Int>]? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let ibot = try XCTUnwrap(network.objective as? IBOT, "not iBOT", file: file, line: line)
        var (options, clock) = try options(io)
        let localViews = local ? Int(try XCTUnwrap(io.meta("local_crops"), file: file, line: line)) : 0
        options.localCrops = localViews
        let (batch, plan) = try inputs(localImages: local ? try io.tensor("local_images") : nil, localViews: localViews)
        network.parameters.zeroGrads()
        let report: StepReport
        if let shards {
            report = StepReport.combining(shards.map { items in
                network.step(batch.shard(items), plan: plan.shard(items), options: options, clock: clock, lossBatch: batch.count)
            })
        } else {
            report = network.step(batch, plan: plan, options: options, clock: clock)
        }
        for (name, key) in [("cls_loss", "loss_cls"), ("patch_loss", "loss_patch"), ("loss", "loss_total")] {
            let ours = try XCTUnwrap(report.loss(name), name, file: file, line: line)
            let ref = try io.tensor(key).data[0]
            XCTAssertLessThanOrEqual(abs(ours - ref) / abs(ref), 1e-5, "\(key): \(ours) vs \(ref)", file: file, line: line)
        }

        var checked = 0
        for (name, p) in ibot.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), 1e-4, "grad \(name)", file: file, line: line)
            checked += 1
        }
        XCTAssertEqual(checked, io.entries.keys.filter { $0.hasPrefix("grad.") }.count, "every reference gradient checked",
                       file: file, line: line)
        let frozen = ibot.parameters.entries.filter { !$0.1.trainable }.map { $0.0 }
        XCTAssertEqual(frozen, ibot.settings.normLastLayer ? ["head.last_layer.weight_g"] : [], file: file, line: line)

        network.afterStep(options: options, clock: clock, report: report)
        let after = after ?? io
        assertClose(ibot.center.value, try after.tensor("center_after"), 1e-6, "center", file: file, line: line)
        assertClose(ibot.center2.value, try after.tensor("center2_after"), 1e-6, "center2", file: file, line: line)
        var teacherChecked = 0
        for (name, p) in ibot.teacherParameters.entries {
            guard after.entries["teacher_after." + name] != nil else { continue }
            assertClose(p.value, try after.tensor("teacher_after." + name), 1e-6, "teacher \(name) after EMA", file: file, line: line)
            teacherChecked += 1
        }
        XCTAssertEqual(teacherChecked, after.entries.keys.filter { $0.hasPrefix("teacher_after.") }.count, "every teacher tensor checked",
                       file: file, line: line)
        XCTAssertGreaterThan(teacherChecked, 0, file: file, line: line)
    }

    func testStepMatchesReference() throws {
        let network = try PretrainingDirectory.load(Fixtures.url(Self.dir))
        XCTAssertEqual(network.config.objective, "ibot")
        let ibot = try XCTUnwrap(network.objective as? IBOT)
        XCTAssertEqual(ibot.settings, IBOT.Settings(outDim: 32, headHidden: 24, headBottleneck: 16, normLastLayer: true))
        XCTAssertEqual(ibot.teacherParameters.entries.count + 1, ibot.parameters.entries.count, "masked_embed is the student's alone")
        try check(network, try Fixtures.file("\(Self.dir)/io.safetensors"))
    }

    /// The same step in two shards of images (2 + 1): losses, gradients and centre statistics add up.
    func testShardedStepMatchesReference() throws {
        let network = try PretrainingDirectory.load(Fixtures.url(Self.dir))
        try check(network, try Fixtures.file("\(Self.dir)/io.safetensors"), shards: [0..<2, 2..<3])
    }

    /// 2 local crops of 8 pixels (a 2×2 grid against the model's 4×4) through the student only,
    /// unmasked, [CLS] against each teacher global crop with the official 2·(2 + 2 − 1) terms; the
    /// patch loss, the centres and the EMA teacher are those of the step without them.
    func testStepWithLocalCropsMatchesReference() throws {
        let network = try PretrainingDirectory.load(Fixtures.url(Self.dir))
        let io = try Fixtures.file("\(Self.dir)/io_local.safetensors")
        XCTAssertEqual(try io.tensor("local_images").shape, [6, 3, 8, 8])
        try check(network, io, after: try Fixtures.file("\(Self.dir)/io.safetensors"), local: true)
    }

    func testShardedStepWithLocalCropsMatchesReference() throws {
        let network = try PretrainingDirectory.load(Fixtures.url(Self.dir))
        try check(network, try Fixtures.file("\(Self.dir)/io_local.safetensors"), after: try Fixtures.file("\(Self.dir)/io.safetensors"),
                  local: true, shards: [0..<1, 1..<3])
    }

    /// norm_last_layer = false: g trainable (random values, student and teacher); the same
    /// weights otherwise, the same crops and masks.
    func testStepWithTrainableScaleMatchesReference() throws {
        let dir = Fixtures.url(Self.dir)
        let io = try Fixtures.file("\(Self.dir)/io_free_g.safetensors")
        var config = try PretrainingDirectory.readConfig(dir)
        var settings = try XCTUnwrap(config.settings(of: IBOT.self))
        settings.normLastLayer = false
        config = PretrainingConfig(IBOT.self, encoder: config.encoder, settings: settings)
        let network = try PretrainingDirectory.network(
            config: config, weights: try SafeTensorsFile(contentsOf: dir.appendingPathComponent(ModelDirectory.weightsName)))
        let ibot = try XCTUnwrap(network.objective as? IBOT)
        ibot.studentHead.lastLayer.weightG.value = try io.tensor("param.head.last_layer.weight_g")
        ibot.teacherHead.lastLayer.weightG.value = try io.tensor("param.teacher.head.last_layer.weight_g")
        XCTAssertTrue(ibot.studentHead.lastLayer.weightG.trainable)
        try check(network, io)
    }

    /// main_ibot.py `iBOTLoss.__init__`: concat(np.linspace(warmup, final, W), ones(epochs − W) · final),
    /// read at the epoch. np.linspace(a, b, 1) is [a]: a one-epoch warmup still starts at the warmup value.
    func testTeacherTemperatureScheduleIsTheOfficialLinspace() {
        func schedule(warmupEpochs: Int, epochs: Int) -> [Float] {
            var o = IBOT.Options(warmupTeacherTempEpochs: warmupEpochs)
            (o.warmupTeacherTemp, o.teacherTemp, o.warmupTeacherPatchTemp, o.teacherPatchTemp) = (0.04, 0.07, 0.04, 0.07)
            return (0..<epochs).map { e in
                let t = o.temperatures(at: TrainingClock(step: e, stepsPerEpoch: 1, epochs: epochs))
                XCTAssertEqual(t.teacherCls, t.teacherPatch)
                return t.teacherPatch
            }
        }
        // np.concatenate((np.linspace(0.04, 0.07, W), np.ones(E - W) * 0.07)) for (W, E) = (1, 3), (2, 3), (3, 4)
        XCTAssertEqual(schedule(warmupEpochs: 1, epochs: 3), [0.04, 0.07, 0.07])
        XCTAssertEqual(schedule(warmupEpochs: 2, epochs: 3), [0.04, 0.07, 0.07])
        XCTAssertEqual(schedule(warmupEpochs: 3, epochs: 4), [0.04, 0.055, 0.07, 0.07].map { Float($0) })
        let long = schedule(warmupEpochs: 30, epochs: 100)
        XCTAssertEqual(long[0], 0.04)
        XCTAssertEqual(long[10], Float(0.050344827586206897))
        XCTAssertEqual(long[29], 0.07)
        XCTAssertEqual(long[99], 0.07)
    }
}
