import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
@testable import Service
import Objectives
import TestSupport

/// Mask images, per-patch errors and the heatmap panel; warnings about conversions; out-of-distribution
/// scores from a calibration file; intended input in /v1/models; the page's files.
extension ServiceTests {
    func testMaskImageMasksThePatchesThatAreMostlyWhite() throws {
        // 64×64 mask for the 32-px, 4-px-patch model (8×8 grid): the left half white, plus one
        // patch-sized square at grid (row 6, column 6) that is white in 3 of its 4 quarters.
        let mask = Image(width: 64, height: 64, channels: 1) { px in
            for y in 0..<64 { for x in 0..<64 {
                let inSquare = (48..<56).contains(y) && (48..<56).contains(x) && !(y >= 52 && x >= 52)
                px[y * 64 + x] = x < 32 || inSquare ? 255 : 0
            } }
        }
        let encoded = Data(try PNGEncoder.encode(mask))
        let (status, json, _) = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(),
                                                                          "mask": "data:image/png;base64," + encoded.base64EncodedString()],
                                     headers: ["accept": "application/json"])
        XCTAssertEqual(status, 200, "\(String(describing: json))")
        let expected = ((0..<64).filter { $0 % 8 < 4 } + [6 * 8 + 6]).sorted()
        XCTAssertEqual(json?["mask"] as? [Int], expected)
        XCTAssertEqual(json?["masking"] as? String, "explicit")

        // The same mask as a multipart part named "mask".
        let boundary = "XyZ"
        var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
        body += photo
        body += Data("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"mask\"; filename=\"m.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        body += encoded
        body += Data("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nbootmae\r\n--\(boundary)--\r\n".utf8)
        let multipart = call("POST", "/v1/reconstructions", body: [UInt8](body), contentType: "multipart/form-data; boundary=\(boundary)",
                             headers: ["accept": "application/json"])
        XCTAssertEqual(multipart.status, 200)
        XCTAssertEqual(multipart.json?["mask"] as? [Int], expected)

        // All black hides nothing: refused with the count.
        let black = Data(try PNGEncoder.encode(Image(width: 8, height: 8, channels: 1, fill: 0))).base64EncodedString()
        let refused = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(), "mask": black])
        XCTAssertEqual(refused.status, 400)
        XCTAssertEqual((refused.json?["error"] as? [String: Any])?["message"] as? String,
                       "'mask' must hide between 1 and 63 patches; this mask image hides 0 (white: masked)")
        let notImage = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(), "mask": "aGVsbG8="])
        XCTAssertEqual(notImage.status, 400)
        XCTAssertEqual((notImage.json?["error"] as? [String: Any])?["param"] as? String, "mask")
    }

    func testPerPatchErrorsAndHeatmap() throws {
        let masked = [0, 1, 2, 9, 63]
        let (status, json, _) = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(), "mask": masked],
                                     headers: ["accept": "application/json"])
        XCTAssertEqual(status, 200)
        let errors = try XCTUnwrap(json?["errors"] as? [Any])
        XCTAssertEqual(errors.count, 64)
        for (i, e) in errors.enumerated() {
            if masked.contains(i) { XCTAssertNotNil(e as? Double, "patch \(i)") } else { XCTAssertTrue(e is NSNull, "patch \(i)") }
        }
        let values = masked.map { errors[$0] as! Double }
        XCTAssertEqual(values.reduce(0, +) / Double(values.count), json?["mse"] as! Double, accuracy: 1e-12)
        let heatmap = try ImageDecoder.decode([UInt8](XCTUnwrap(Data(base64Encoded: XCTUnwrap((json?["images"] as? [String: Any])?["heatmap"] as? String)))))
        XCTAssertEqual(heatmap.channels, 3)
        XCTAssertEqual(heatmap.width, 32 * 6)
        // The worst masked patch is the lightest colour of the ramp; visible patches are gray.
        let worst = masked[values.indices.max { values[$0] < values[$1] }!]
        let scale = 6 * 4
        let (wx, wy) = ((worst % 8) * scale + 2, (worst / 8) * scale + 2)
        XCTAssertEqual([0, 1, 2].map { heatmap[x: wx, y: wy, channel: $0] }, [252, 236, 150])
        let (vx, vy) = (5 * scale + 3, 5 * scale + 3)   // patch 45, visible
        XCTAssertEqual(heatmap[x: vx, y: vy, channel: 0], heatmap[x: vx, y: vy, channel: 1])
        XCTAssertLessThanOrEqual(heatmap[x: vx, y: vy, channel: 0], 85)

        let (_, _, png) = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString()])
        XCTAssertTrue(png.headers.contains { $0 == ("X-Panels", "original,masked,reconstruction,reconstruction+visible,error_heatmap") })
        XCTAssertTrue(png.headers.contains { $0 == ("X-Warnings", "cropped") })
    }

    func testConversionWarnings() throws {
        func codes(_ path: String, _ image: Data, model: String) -> [String] {
            let r = call("POST", path, json: ["model": model, "input": image.base64EncodedString()], headers: ["accept": "application/json"])
            XCTAssertEqual(r.status, 200, path)
            let warnings = path == "/v1/reconstructions" ? r.json?["warnings"] : ((r.json?["data"] as? [[String: Any]])?.first?["warnings"])
            return ((warnings as? [[String: Any]]) ?? []).compactMap { $0["code"] as? String }
        }
        let image = { (name: String) in try! Data(contentsOf: Fixtures.url("images/\(name)")) }
        XCTAssertEqual(codes("/v1/embeddings", photo, model: "encoder"), ["cropped"])                 // 512×384: 25% cut away
        XCTAssertEqual(codes("/v1/embeddings", png, model: "encoder"), [])                            // 96×80 into 32 px
        XCTAssertEqual(codes("/v1/classifications", image("rgba.png"), model: "classifier"), ["alpha_dropped"])
        XCTAssertEqual(codes("/v1/classifications", image("palette_trns.png"), model: "classifier"), ["alpha_dropped"])
        XCTAssertEqual(codes("/v1/reconstructions", image("gray.png"), model: "bootmae"), ["grayscale_to_rgb"])
        XCTAssertEqual(codes("/v1/embeddings", image("gray16.png"), model: "encoder"), ["grayscale_to_rgb"])
        let tiny = Data(try PNGEncoder.encode(Image(width: 12, height: 10, channels: 3, fill: 90)))
        XCTAssertEqual(codes("/v1/embeddings", tiny, model: "encoder"), ["upscaled"])                 // ×3.2
        XCTAssertTrue(InputChecks.isColourful(try ImageDecoder.decode(photo)))
        XCTAssertFalse(InputChecks.isColourful(try ImageDecoder.decode(image("gray.png")).toRGB()))
        XCTAssertTrue(AlphaProbe.hasAlpha([UInt8](image("gray_alpha.png"))))
        XCTAssertFalse(AlphaProbe.hasAlpha([UInt8](png)))
        XCTAssertFalse(AlphaProbe.hasAlpha([UInt8](photo)))
    }

    func testOutOfDistributionScoreFromTheCalibrationFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("service-ood-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let fm = FileManager.default
        for name in ["bootmae", "classifier"] {
            try fm.copyItem(at: Self.modelsDir.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        // intended_input in config.json reaches /v1/models.
        let config = dir.appendingPathComponent("classifier/config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
        object["intended_input"] = ["channels": 3, "size": 32, "domain": "test pictures"]
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        // Calibrate the pixel decoder on the fixture photos, as `bootmae-train calibrate` would on a test split.
        let plain = try ModelRegistry(directory: dir.path)
        let network = try XCTUnwrap(plain.models["bootmae"]?.network)
        let measure = try XCTUnwrap(network.defaultErrorProtocol(seeds: 2))
        let inputs = try ["rgb.png", "gray.png", "photo_512x384.jpg", "rgb_progressive.jpg"].map { name in
            plain.models["bootmae"]!.preprocessor.tensorCHW(try ImageDecoder.decode(Data(contentsOf: Fixtures.url("images/\(name)"))))
        }
        let errors = network.maskedPatchErrors(Tensor(shape: [4, 3, 32, 32], data: inputs.flatMap { $0 }), protocol: measure)
        XCTAssertEqual(errors.count, 4)
        // Every image gets the same masks whatever else is in the batch (the sums differ only by rounding).
        XCTAssertEqual(network.maskedPatchErrors(Tensor(shape: [1, 3, 32, 32], data: inputs[2]), protocol: measure)[0], errors[2], accuracy: 1e-5 * errors[2])
        let calibration = ReconstructionErrorCalibration(measure: measure, dataset: "fixtures", errors: errors)
        try JSONEncoder().encode(calibration).write(to: dir.appendingPathComponent("bootmae/\(ReconstructionErrorCalibration.fileName)"))

        var options = Service.Options()
        options.maxImagesPerRequest = 8
        let service = Service(registry: try ModelRegistry(directory: dir.path), limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 64), options: options)
        service.markReady()
        let recon = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(), "mask": [5]],
                         headers: ["accept": "application/json"], service: service)
        let ood = try XCTUnwrap(recon.json?["ood"] as? [String: Any])
        XCTAssertEqual(ood["reference_model"] as? String, "bootmae")
        XCTAssertEqual(ood["calibration_images"] as? Int, 4)
        XCTAssertEqual(ood["masked_patch_mse"] as! Double, errors[2], accuracy: 1e-5 * errors[2])
        // The percentile of the reported error. The served image's error can tie a calibration error
        // exactly (the same image, and GEMM rows that do not depend on the batch), and a tie flips
        // when the error passes through JSON text; so the reported percentile must be that of a
        // value within 1e-12 (relative) of the reported one.
        let reported = ood["masked_patch_mse"] as! Double
        let percentile = try XCTUnwrap(ood["percentile"] as? Double)
        XCTAssertGreaterThanOrEqual(percentile, calibration.percentile(of: reported * (1 - 1e-12)))
        XCTAssertLessThanOrEqual(percentile, calibration.percentile(of: reported * (1 + 1e-12)))
        let embedding = call("POST", "/v1/embeddings", json: ["model": "bootmae", "input": photo.base64EncodedString()], service: service)
        XCTAssertNotNil((embedding.json?["data"] as? [[String: Any]])?.first?["ood"])
        // The classifier's encoder differs (8-px patches, ImageNet statistics): it says nothing.
        let labels = call("POST", "/v1/classifications", json: ["model": "classifier", "input": photo.base64EncodedString()], service: service)
        XCTAssertEqual(labels.status, 200)
        XCTAssertNil((labels.json?["data"] as? [[String: Any]])?.first?["ood"])
        let cards = call("GET", "/v1/models", service: service).json?["data"] as? [[String: Any]] ?? []
        let byID = Dictionary(uniqueKeysWithValues: cards.map { ($0["id"] as! String, $0) })
        XCTAssertEqual((byID["classifier"]?["intended_input"] as? [String: Any])?["domain"] as? String, "test pictures")
        XCTAssertNil(byID["bootmae"]?["intended_input"])
        XCTAssertEqual((byID["bootmae"]?["ood_score"] as? [String: Any])?["reference_model"] as? String, "bootmae")
        XCTAssertNil(byID["classifier"]?["ood_score"])

        // The percentile: share below, ties counted half; the warning on both tails.
        let c = ReconstructionErrorCalibration(measure: measure, dataset: "", errors: [4, 1, 2, 3])
        XCTAssertEqual([0.5, 1, 2.5, 4, 9].map(c.percentile(of:)), [0, 12.5, 50, 87.5, 100])
        XCTAssertNotNil(OODScore(percentile: 99.5, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 4).warning)
        XCTAssertNotNil(OODScore(percentile: 0.5, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 4).warning)
        XCTAssertNil(OODScore(percentile: 50, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 4).warning)
    }

    func testThePageIsServed() {
        for (path, type) in [("/", "text/html; charset=utf-8"), ("/page.css", "text/css; charset=utf-8"), ("/page.js", "text/javascript; charset=utf-8")] {
            let r = call("GET", path)
            XCTAssertEqual(r.status, 200, path)
            XCTAssertTrue(r.response.headers.contains { $0 == ("Content-Type", type) }, path)
            XCTAssertTrue(r.response.headers.contains { $0.0 == "Content-Security-Policy" }, path)
        }
        let html = String(decoding: call("GET", "/").response.body, as: UTF8.self)
        XCTAssertTrue(html.contains("<script src=\"/page.js\" defer></script>"))
        XCTAssertFalse(html.contains("http://") || html.contains("https://"), "nothing loads from elsewhere")
    }
}
