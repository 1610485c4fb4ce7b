import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import TestSupport

final class SafeTensorsTests: XCTestCase {
    func testRoundTripF32AndF16() throws {
        let a = Tensor(shape: [2, 3], data: [1, -2, 3.5, 0, 1e-3, 65504])
        let b = Tensor(shape: [4], data: [0.1, 0.2, 0.3, 0.4])
        let f32 = try SafeTensorsFile(data: SafeTensorsWriter.encode([("a", a), ("b", b)], metadata: ["k": "v"]))
        XCTAssertEqual(try f32.tensor("a"), a)
        XCTAssertEqual(try f32.tensor("b"), b)
        XCTAssertEqual(f32.metadata["k"], "v")
        let f16 = try SafeTensorsFile(data: SafeTensorsWriter.encode([("a", a)], dtype: .f16))
        XCTAssertEqual(f16.entries["a"]?.dtype, .f16)
        // Half precision keeps 11 significant bits.
        XCTAssertLessThan(relativeError(try f16.tensor("a"), a), 1e-3)
    }

    func testReadsTheReferenceWritersOutput() throws {
        // Written by the Python safetensors package: same bytes our reader must accept.
        let f = try Fixtures.file("ops/gather_tokens.safetensors")
        XCTAssertEqual(f.entries["x"]?.shape, [2, 10, 6])
        XCTAssertEqual(try f.integers("index").values.count, 8)
    }

    func testMalformedFilesAreErrorsNotCrashes() {
        let cases: [(String, Data)] = [
            ("empty", Data()),
            ("short", Data([1, 2, 3])),
            ("header too long", Data([255, 255, 0, 0, 0, 0, 0, 0]) + Data("{}".utf8)),
            ("not json", Data([4, 0, 0, 0, 0, 0, 0, 0]) + Data("abcd".utf8)),
            ("offsets out of range", { () -> Data in
                let header = #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
                return Data([UInt8(header.utf8.count), 0, 0, 0, 0, 0, 0, 0]) + Data(header.utf8) + Data(count: 8)
            }()),
            ("unknown dtype", { () -> Data in
                let header = #"{"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#
                return Data([UInt8(header.utf8.count), 0, 0, 0, 0, 0, 0, 0]) + Data(header.utf8) + Data(count: 8)
            }()),
        ]
        for (name, data) in cases {
            XCTAssertThrowsError(try SafeTensorsFile(data: data), name) { error in
                XCTAssertTrue(error is CheckpointError, "\(name): \(error)")
            }
        }
    }

    func testAtomicWriteLeavesNoTemporaryFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        try SafeTensorsWriter.write([("x", Tensor(zeros: [3]))], to: url)
        try SafeTensorsWriter.write([("x", Tensor(repeating: 1, shape: [3]))], to: url)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["w.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).tensor("x").data, [1, 1, 1])
    }

    /// A write that fails (here: the folder took no new files) says why and that the old file is
    /// intact; leftovers of writers killed mid-write are removed by name, nothing else is.
    func testFailedAtomicWriteKeepsTheOldFileAndLeftoversAreRemoved() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        try SafeTensorsWriter.write([("x", Tensor(zeros: [3]))], to: url)
        let killed = dir.appendingPathComponent(AtomicFile.temporaryPrefix(for: "w.safetensors") + "999-1")
        try Data("half a checkpoint".utf8).write(to: killed)
        try Data("{}".utf8).write(to: dir.appendingPathComponent(".lock"))
        AtomicFile.removeLeftovers(in: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), [".lock", "w.safetensors"])

        let missing = dir.appendingPathComponent("gone/w.safetensors")
        XCTAssertThrowsError(try SafeTensorsWriter.write([("x", Tensor(zeros: [3]))], to: missing)) {
            XCTAssertTrue("\($0)".hasPrefix("cannot write \(missing.path): cannot create a temporary file in"), "\($0)")
            XCTAssertTrue("\($0)".contains("No such file or directory"), "\($0)")
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: dir.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: dir.path) }
        if getuid() != 0 {  // root writes anywhere
            XCTAssertThrowsError(try SafeTensorsWriter.write([("x", Tensor(repeating: 1, shape: [3]))], to: url)) {
                XCTAssertTrue("\($0)".contains("the previous w.safetensors is intact"), "\($0)")
            }
        }
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).tensor("x").data, [0, 0, 0])
    }
}

/// Loading model directories by name: the errors a user sees for wrong checkpoints.
final class ModelDirectoryTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("md-\(UUID())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// A copy of a fixture model directory with its weights and config edited.
    func variant(of name: String, edit: (inout [(String, Tensor)]) -> Void = { _ in },
                 config editConfig: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
        let src = Fixtures.url("encoders/\(name)")
        let file = try SafeTensorsFile(contentsOf: src.appendingPathComponent("model.safetensors"))
        var tensors = try file.names.map { ($0, try file.tensor($0)) }
        edit(&tensors)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: src.appendingPathComponent("config.json"))) as! [String: Any]
        editConfig(&config)
        let dir = scratch.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    func assertLoadError(_ dir: URL, _ expected: CheckpointError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelDirectory.loadEncoder(dir), file: file, line: line) { error in
            XCTAssertEqual(error as? CheckpointError, expected, file: file, line: line)
        }
    }

    /// A served encoder holds its block weights only in the packed layout: saving it must fail with
    /// the tensor's name, not write empty tensors.
    func testPackedOnlyWeightsRefuseToBeSaved() throws {
        try XCTSkipUnless(PackedMatrix.isAvailable, "no AVX-512: weights are never packed")
        let model = try ModelDirectory.loadEncoder(Fixtures.url("encoders/timm_qkv_cls"))
        XCTAssertTrue(model.packForInference(releasingPlainValues: true))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("packed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try ModelDirectory.save(config: model.config, parameters: model.parameters, to: out)) { error in
            XCTAssertEqual(error as? CheckpointError, .inferenceOnly("blocks.0.attn.qkv.weight"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(ModelDirectory.weightsName).path))
    }

    func testMissingTensorIsNamedWithItsShape() throws {
        let dir = try variant(of: "timm_qkv_cls") { $0.removeAll { $0.0 == "blocks.1.norm2.bias" } }
        assertLoadError(dir, .missingTensor("blocks.1.norm2.bias", expected: [48]))
    }

    func testMisShapedTensorNamesBothShapes() throws {
        let dir = try variant(of: "timm_qkv_cls") { t in
            let i = t.firstIndex { $0.0 == "blocks.0.mlp.fc1.weight" }!
            t[i].1 = Tensor(zeros: [100, 48])
        }
        assertLoadError(dir, .shapeMismatch("blocks.0.mlp.fc1.weight", expected: [192, 48], found: [100, 48]))
    }

    func testUnexpectedTensorIsAnError() throws {
        let dir = try variant(of: "timm_qkv_cls") { $0.append(("blocks.7.attn.qkv.weight", Tensor(zeros: [3]))) }
        assertLoadError(dir, .unexpectedTensor("blocks.7.attn.qkv.weight", shape: [3]))
    }

    func testDecoderKeysOfPretrainingCheckpointsAreIgnored() throws {
        let dir = try variant(of: "timm_qkv_cls") {
            $0 += [("mask_token", Tensor(zeros: [1, 1, 8])), ("decode_blocks.0.norm1.weight", Tensor(zeros: [8])),
                   ("decoder_pred.weight", Tensor(zeros: [4, 8])), ("lm_head.proj.bias", Tensor(zeros: [3]))]
        }
        XCTAssertNoThrow(try ModelDirectory.loadEncoder(dir))
    }

    func testMissingConfigFieldIsNamed() throws {
        let dir = try variant(of: "timm_qkv_cls", config: { $0.removeValue(forKey: "img_size") })
        XCTAssertThrowsError(try ModelDirectory.loadEncoder(dir)) { error in
            XCTAssertTrue("\(error)".contains("'img_size' is missing"), "\(error)")
        }
    }

    func testInconsistentConfigIsRejected() throws {
        let dir = try variant(of: "timm_qkv_cls", config: { $0["patch_size"] = 7 })
        XCTAssertThrowsError(try ModelDirectory.loadEncoder(dir)) { error in
            XCTAssertTrue("\(error)".contains("multiple of patch_size"), "\(error)")
        }
    }

    func testMissingPositionalTableNeedsASinCosConfig() throws {
        let dir = try variant(of: "timm_qkv_cls") { $0.removeAll { $0.0 == "pos_embed" } }
        assertLoadError(dir, .missingTensor("pos_embed", expected: [1, 17, 48]))
    }

    /// BootMAE's q_bias/v_bias load into a timm-style fused qkv bias as [q | 0 | v] (the bias
    /// `Attention.forward` of BootMAE's `models/modeling_pretrain_bootmae.py` adds).
    func testBootMAEBiasesLoadIntoFusedQKVBias() throws {
        let original = try ModelDirectory.loadEncoder(Fixtures.url("encoders/bootmae_qv"))
        let fused = try ModelDirectory.loadEncoder(try variant(of: "bootmae_qv", config: { $0["qkv_bias"] = "qkv" }))
        let io = try Fixtures.file("encoders/bootmae_qv/io.safetensors")
        let images = try io.tensor("images")
        XCTAssertLessThan(relativeError(fused.forward(images).0, original.forward(images).0), 1e-6)
    }

    func testSaveThenLoadGivesTheSameModel() throws {
        let model = try ModelDirectory.loadEncoder(Fixtures.url("encoders/timm_qkv_avg_head"))
        let dir = scratch.appendingPathComponent("saved")
        try ModelDirectory.save(config: model.config, parameters: model.parameters, to: dir)
        let again = try ModelDirectory.loadEncoder(dir)
        XCTAssertEqual(again.config, model.config)
        let images = try Fixtures.file("encoders/timm_qkv_avg_head/io.safetensors").tensor("images")
        XCTAssertEqual(again.forward(images).0, model.forward(images).0)
    }
}

/// Files are read tensor by tensor from disk (never whole): what is read must equal what an
/// in-memory copy of the same bytes gives, and a damaged file must stay an error, not a crash.
final class SafeTensorsFileReadingTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("stf-\(UUID())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func write(_ data: Data, _ name: String = "w.safetensors") throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    /// Random tensors, one longer than a conversion chunk so F16 reads take several steps.
    func sampleTensors() -> [(String, Tensor)] {
        var rng = SeededRandom(seed: 7)
        let long = 200_003   // F16: 400 kB, more than one 256 KiB conversion chunk
        return [("long", Tensor(shape: [long], data: (0..<long).map { _ in rng.normal() })),
                ("matrix", Tensor(shape: [3, 5], data: (0..<15).map { _ in rng.normal() })),
                ("empty", Tensor(zeros: [0, 4]))]
    }

    func testFileReadsEqualInMemoryReads() throws {
        for dtype in [SafeTensorsFile.DType.f32, .f16] {
            let bytes = SafeTensorsWriter.encode(sampleTensors(), metadata: ["k": "v"], dtype: dtype)
            let fromFile = try SafeTensorsFile(contentsOf: try write(bytes, "\(dtype).safetensors"))
            let inMemory = try SafeTensorsFile(data: bytes)
            XCTAssertEqual(fromFile.names, inMemory.names)
            XCTAssertEqual(fromFile.metadata, ["k": "v"])
            for name in inMemory.names {
                XCTAssertEqual(try fromFile.tensor(name), try inMemory.tensor(name), "\(dtype) \(name)")
            }
        }
    }

    func testF16StoredWeightsReadAsTheirFloat32Values() throws {
        let tensors = sampleTensors()
        let file = try SafeTensorsFile(contentsOf: try write(SafeTensorsWriter.encode(tensors, dtype: .f16)))
        for (name, t) in tensors {
            XCTAssertEqual(try file.tensor(name).data, t.data.map { Float(Float16($0)) }, name)
        }
    }

    func testBF16IsTheUpperHalfOfFloat32() throws {
        let values: [Float] = [1, -2.5, 0.15625, 3e38]
        let halves = values.map { UInt16($0.bitPattern >> 16) }
        let header = #"{"x":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}"#
        var data = Data([UInt8(header.utf8.count), 0, 0, 0, 0, 0, 0, 0]) + Data(header.utf8)
        halves.withUnsafeBytes { data.append(contentsOf: $0) }
        let file = try SafeTensorsFile(contentsOf: try write(data))
        XCTAssertEqual(try file.tensor("x").data, values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
    }

    func testReadIntoAnExistingBufferFillsItInPlace() throws {
        let tensors = sampleTensors()
        let file = try SafeTensorsFile(contentsOf: try write(SafeTensorsWriter.encode(tensors)))
        var target = Tensor(zeros: [3, 5])
        try target.data.withUnsafeMutableBufferPointer { try file.read("matrix", into: $0) }
        XCTAssertEqual(target, tensors[1].1)
    }

    func testTruncatedFileIsAnErrorWhenOpened() throws {
        let bytes = SafeTensorsWriter.encode(sampleTensors())
        for keep in [0, 5, 8, 20, bytes.count - 1] {
            let url = try write(bytes.prefix(keep), "cut-\(keep).safetensors")
            XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url), "kept \(keep) bytes") { error in
                guard case .malformed? = error as? CheckpointError else { return XCTFail("kept \(keep): \(error)") }
            }
        }
    }

    /// A file cut short after its header was read (rewritten in place by another program).
    func testFileTruncatedWhileOpenIsAnErrorWhenRead() throws {
        let url = try write(SafeTensorsWriter.encode(sampleTensors()))
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(truncate(url.path, 200), 0)
        XCTAssertThrowsError(try file.tensor("long")) { error in
            guard case let .malformed(_, why)? = error as? CheckpointError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("truncated"), why)
        }
    }

    func testImpossibleShapesAreErrorsNotCrashes() {
        func file(_ shape: String, _ offsets: String) -> Data {
            let header = #"{"x":{"dtype":"F32","shape":\#(shape),"data_offsets":\#(offsets)}}"#
            return Data([UInt8(header.utf8.count), 0, 0, 0, 0, 0, 0, 0]) + Data(header.utf8) + Data(count: 16)
        }
        let cases = [("negative dimension", file("[-4]", "[16,0]")),
                     ("overflowing size", file("[4611686018427387904,4]", "[0,16]")),
                     ("reversed offsets", file("[0]", "[8,-9223372036854775807]"))]
        for (name, data) in cases {
            XCTAssertThrowsError(try SafeTensorsFile(data: data), name) { error in
                XCTAssertTrue(error is CheckpointError, "\(name): \(error)")
            }
        }
    }

    func testMissingFileNamesThePath() {
        let url = scratch.appendingPathComponent("absent.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) { error in
            XCTAssertEqual(error as? CheckpointError, .unreadable(url.path, String(cString: strerror(ENOENT))))
        }
    }
}
