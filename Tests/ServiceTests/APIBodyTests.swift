import XCTest
import Foundation
@testable import Service
import ViT
import Objectives
import TestSupport

/// The typed request and response bodies: the rules options are read by (unchanged from the
/// dictionary-based service), what openapi.yaml says about each field, and the bytes clients get.
extension ServiceTests {
    func post(_ path: String, _ body: String, query: [String: String] = [:], accept: String? = nil)
        -> (status: Int, json: [String: Any]?, response: ServiceResponse) {
        call("POST", path, body: Array(body.utf8), contentType: "application/json", query: query,
             headers: accept.map { ["accept": $0] } ?? [:])
    }

    /// Answers recorded from the JSONSerialization-based service: a number or boolean may come as a
    /// string, JSON true/false count as 1/0 and 1/0 as booleans, null is absent, the body wins over
    /// the query, an explicit mask makes mask_ratio/seed/masking irrelevant, and of several faults the
    /// one the handler checks first is reported. Values that used to trap (top_k 1e300, scale 1e300)
    /// are clamped or refused. Changed since (review 12, B12): a `mask` string of comma-separated
    /// numbers is a list of patch indices (the list form of a query parameter).
    func testOptionRulesAreUnchanged() {
        let p = "\"\(png.base64EncodedString())\""
        let e = "/v1/embeddings", c = "/v1/classifications", r = "/v1/reconstructions"
        let notJSON = "the request body is not valid JSON"
        let string = ": base64 image bytes or a data URI"
        let width = "'dimensions': this model's embeddings have 32 dimensions and are not truncated; leave it out or send 32"
        let cases: [(String, String, [String: String], Int, String?, String?)] = [
            (e, "", [:], 400, nil, "the request body is empty; send a JSON object"),
            (e, "[1]", [:], 400, nil, "the request body must be a JSON object"),
            (e, "\"s\"", [:], 400, nil, notJSON),
            (e, "{oops", [:], 400, nil, notJSON),
            (e, "{\"input\": \(p), \"note\": \"\\ud800\"}", [:], 400, nil, notJSON),
            (e, "{\"input\": \(p), \"note\": {\"a\": [1e400]}}", [:], 400, nil, notJSON),
            (e, "{\"input\": \(p), \"model\": {\"a\": \"\\ud800\"}}", [:], 400, nil, notJSON),
            (e, "{\"input\": \(p), \"user\": \"me\"}", [:], 200, nil, nil),   // OpenAI's end-user tag, ignored
            (e, "{\"input\": \(p), \"note\": [1, {\"a\": null}], \"user\": \"me\"}", [:], 400, "note",
             "unknown option 'note'. This endpoint takes: model, input, pooling, normalize, encoding_format, dimensions, user"),
            (e, "{\"input\": \(p)}", ["poolng": "mean"], 400, "poolng",
             "unknown option 'poolng'; did you mean 'pooling'? This endpoint takes: model, input, pooling, normalize, encoding_format, dimensions, user"),
            (c, "{\"input\": \(p), \"topk\": 3, \"x\": 1}", [:], 400, "topk",
             "unknown option 'topk' (and 'x'); did you mean 'top_k'? This endpoint takes: model, input, top_k"),
            (e, "{}", [:], 400, "input", "missing 'input': a base64 image, a data URI or a list of them"),
            (e, "{}", ["input": png.base64EncodedString()], 200, nil, nil),
            (e, "{\"input\": null}", [:], 400, "input", "input must be a string" + string),
            (e, "{\"input\": [\"!!\", 5]}", [:], 400, "input[0]", "input[0] is not valid base64"),
            (e, "{\"input\": [\(p), 5]}", [:], 400, "input[1]", "input[1] must be a string" + string),
            (e, "{\"input\": []}", [:], 400, "input", "'input' is an empty list"),
            (e, "{\"input\": 5, \"model\": 5}", [:], 400, "input", "input must be a string" + string),
            (e, "{\"input\": \(p), \"model\": 5}", [:], 400, "model", "'model' must be a string"),
            (e, "{\"input\": \(p), \"model\": null}", ["model": "nope"], 200, nil, nil),
            (e, "{\"input\": \(p), \"model\": \"nope\", \"pooling\": \"max\"}", [:], 404, "model",
             "model 'nope' does not exist; available: bootmae, classifier, encoder"),
            (e, "{\"input\": \(p), \"pooling\": true}", [:], 400, "pooling", "'pooling' must be a string"),
            (e, "{\"input\": \(p), \"pooling\": \"MEAN\"}", [:], 400, "pooling", "'pooling' must be cls or mean"),
            (e, "{\"input\": \(p), \"pooling\": \"cls\"}", ["pooling": "max"], 200, nil, nil),
            (e, "{\"input\": \(p)}", ["pooling": "max"], 400, "pooling", "'pooling' must be cls or mean"),
            (e, "{\"input\": \(p), \"normalize\": \"TRUE\"}", [:], 200, nil, nil),
            (e, "{\"input\": \(p), \"normalize\": 1}", [:], 200, nil, nil),
            (e, "{\"input\": \(p), \"normalize\": 2}", [:], 400, "normalize", "'normalize' must be true or false"),
            (e, "{\"input\": \(p), \"normalize\": \"1\"}", [:], 400, "normalize", "'normalize' must be true or false"),
            (e, "{\"input\": \(p), \"encoding_format\": 5, \"normalize\": 5}", [:], 400, "normalize", "'normalize' must be true or false"),
            (e, "{\"input\": \(p), \"encoding_format\": 5, \"dimensions\": 64}", [:], 400, "dimensions", width),
            (e, "{\"input\": \(p), \"encoding_format\": \"FLOAT\"}", [:], 400, "encoding_format", "'encoding_format' must be float or base64"),
            (e, "{\"input\": \(p), \"dimensions\": \"32\"}", [:], 200, nil, nil),
            (e, "{\"input\": \(p), \"dimensions\": \"abc\"}", [:], 400, "dimensions", "'dimensions' must be a number"),
            (e, "{\"input\": \(p), \"dimensions\": true}", [:], 400, "dimensions", width),
            (e, "{\"input\": \(p), \"dimensions\": 32.5}", [:], 400, "dimensions", width),
            (c, "{\"input\": \(p), \"top_k\": \"3\"}", [:], 200, nil, nil),
            (c, "{\"input\": \(p), \"top_k\": true}", [:], 200, nil, nil),
            (c, "{\"input\": \(p), \"top_k\": 2.5}", [:], 400, "top_k", "'top_k' must be a positive integer"),
            (c, "{\"input\": \(p), \"top_k\": [2]}", [:], 400, "top_k", "'top_k' must be a number"),
            (c, "{\"input\": \(p), \"top_k\": 1e300}", [:], 200, nil, nil),
            (c, "{\"input\": \(p), \"top_k\": \"inf\"}", [:], 200, nil, nil),
            (c, "{\"input\": \(p), \"model\": \"encoder\", \"top_k\": 0}", [:], 400, "model",
             "model 'encoder' has no classification head; classifiers: classifier"),
            (r, "{\"input\": [\(p)]}", [:], 400, "input", "'input' must be one image here, not a list"),
            (r, "{\"input\": \(p), \"mask\": \"1,2\"}", [:], 200, nil, nil),
            (r, "{\"input\": \(p)}", ["mask": "1, 2,63"], 200, nil, nil),
            (r, "{\"input\": \(p)}", ["mask": "1,,2"], 400, "mask", "'mask' holds patch indices 0..<64 (row-major on the 8×8 grid)"),
            (r, "{\"input\": \(p)}", ["mask": "1,64"], 400, "mask", "'mask' holds patch indices 0..<64 (row-major on the 8×8 grid)"),
            (r, "{\"input\": \(p)}", ["mask": "1,x"], 400, "mask", "mask is not valid base64"),
            (r, "{\"input\": \(p), \"mask\": {\"a\": 1}}", [:], 400, "mask", "'mask' must be a list of patch indices or a mask image (base64 or a data URI)"),
            (r, "{\"input\": \(p), \"mask\": [1, \"2\"]}", [:], 400, "mask", "'mask' holds patch indices 0..<64 (row-major on the 8×8 grid)"),
            (r, "{\"input\": \(p), \"mask\": [true, 2e0]}", [:], 200, nil, nil),
            (r, "{\"input\": \(p), \"mask\": [3, 4], \"seed\": -1, \"mask_ratio\": 7, \"masking\": \"x\"}", [:], 200, nil, nil),
            (r, "{\"input\": \(p), \"seed\": -1, \"mask_ratio\": 7, \"masking\": \"x\"}", [:], 400, "mask_ratio",
             "'mask_ratio' must be above 0 and below 1 (this model has 64 patches)"),
            (r, "{\"input\": \(p), \"seed\": \"7\", \"mask_ratio\": \"0.5\"}", [:], 200, nil, nil),
            (r, "{\"input\": \(p), \"seed\": 1.5, \"masking\": \"x\"}", [:], 400, "seed", "'seed' must be a non-negative integer"),
            (r, "{\"input\": \(p), \"masking\": \"RANDOM\"}", [:], 400, "masking", "'masking' must be random or block"),
            (r, "{\"input\": \(p), \"stats\": \"y\", \"scale\": 99}", [:], 400, "stats", "'stats' must be patch or visible"),
            (r, "{\"input\": \(p), \"scale\": 2.5}", [:], 200, nil, nil),
            (r, "{\"input\": \(p), \"scale\": 1e300}", [:], 400, "scale", "'scale' must be an integer in 1...16"),
            (r, "{\"input\": \(p), \"scale\": \"abc\"}", [:], 400, "scale", "'scale' must be a number"),
        ]
        for (path, body, query, status, param, message) in cases {
            let name = "\(path) \(body.prefix(90)) \(query.keys.sorted())"
            let answer = post(path, body, query: query, accept: "application/json")
            XCTAssertEqual(answer.status, status, name)
            guard let message else { continue }
            let error = answer.json?["error"] as? [String: Any]
            XCTAssertEqual(error?["message"] as? String, message, name)
            XCTAssertEqual(error?["param"] as? String, param, name)
            if param == nil { XCTAssertTrue(error?["param"] is NSNull, name) }
        }
    }

    /// Raw-image and multipart bodies read their options through the same types.
    func testOptionsOfRawAndMultipartBodies() {
        let image = [UInt8](png)
        let bad = call("POST", "/v1/embeddings", body: image, contentType: "image/png", query: ["normalize": "maybe"])
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual((bad.json?["error"] as? [String: Any])?["param"] as? String, "normalize")
        let raw = call("POST", "/v1/classifications", body: image, contentType: "image/png", query: ["top_k": "2"])
        XCTAssertEqual(((raw.json?["data"] as? [[String: Any]])?.first?["labels"] as? [Any])?.count, 2)
        func form(_ fields: [(String, String)]) -> [UInt8] {
            var body = Data("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
            body += png + Data("\r\n".utf8)
            for (k, v) in fields { body += Data("--B\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8) }
            return [UInt8](body + Data("--B--\r\n".utf8))
        }
        let type = "multipart/form-data; boundary=B"
        XCTAssertEqual(call("POST", "/v1/embeddings", body: form([("pooling", "cls")]), contentType: type, query: ["pooling": "max"]).status, 200,
                       "a form field wins over the query")
        XCTAssertEqual(call("POST", "/v1/embeddings", body: form([]), contentType: type, query: ["pooling": "max"]).status, 400)
        let b64 = call("POST", "/v1/embeddings", body: form([("encoding_format", "base64")]), contentType: type)
        XCTAssertTrue((b64.json?["data"] as? [[String: Any]])?.first?["embedding"] is String)
    }

    /// A part whose headers end right at the next boundary has no content; it crashed the server
    /// (a range with its bounds reversed) until request fuzzing found it.
    func testAPartWhoseHeadersRunIntoTheNextBoundaryIsEmpty() throws {
        let body = Array("--a b\r\nContent-Disposition: form-data; name=input\u{cb}\n\r\n\r\n--a b--".utf8)
        let request = ServiceRequest(method: "POST", path: "/v1/embeddings",
                                     headers: ["Content-Type": "multipart/form-data; boundary=\"a b\""], body: body)
        let (files, fields) = try ImageInputs.multipart(request)
        XCTAssertEqual(files, [])
        XCTAssertEqual(Array(fields.values), [""], "one field (its name garbled), empty")
        XCTAssertEqual(call("POST", "/v1/embeddings", body: body, contentType: "multipart/form-data; boundary=\"a b\"").status, 400)
    }

    /// A decoded request holds typed values; a bad one throws its 400 only when read.
    func testRequestTypesDecode() throws {
        let decoder = JSONDecoder()
        decoder.userInfo[RequestFields.fallbackKey] = ["normalize": "true", "pooling": "cls"]
        let body = Data(#"{"input": ["a", 5], "pooling": "mean", "encoding_format": "base64", "dimensions": "32", "model": 7}"#.utf8)
        let request = try decoder.decode(EmbeddingRequest.self, from: body)
        guard case .list(let items)? = try request.input.get() else { return XCTFail("a list") }
        XCTAssertEqual(items, ["a", nil])
        XCTAssertEqual(try request.pooling.get(), .mean, "the body wins")
        XCTAssertEqual(try request.normalize.get(), true, "the query fills in")
        XCTAssertEqual(try request.encodingFormat.get(), .base64)
        XCTAssertEqual(try request.dimensions.get(), 32)
        XCTAssertThrowsError(try request.model.get()) { XCTAssertEqual(($0 as? APIError)?.param, "model") }
        let recon = try ReconstructionRequest(fields: RequestFields(strings: ["seed": "4", "masking": "block", "stats": "visible", "scale": "3"]))
        XCTAssertEqual(try recon.seed.get(), 4)
        XCTAssertEqual(try recon.masking.get(), .block)
        XCTAssertEqual(try recon.stats.get(), .visible)
        XCTAssertEqual(try recon.scale.get(), 3)
        XCTAssertNil(try recon.mask.get())
    }

    /// Field names, enums and required keys as openapi.yaml states them.
    func testBodiesMatchOpenAPI() throws {
        let spec = try OpenAPISchemas(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../openapi.yaml"))
        func names<K: CodingKey & CaseIterable>(_ keys: K.Type) -> Set<String> { Set(keys.allCases.map(\.stringValue)) }
        func cases<E: RawRepresentable & CaseIterable>(_ type: E.Type) -> [String] where E.RawValue == String { type.allCases.map(\.rawValue) }
        XCTAssertEqual(names(EmbeddingRequest.CodingKeys.self), Set(spec.properties("EmbeddingRequest").keys))
        XCTAssertEqual(names(ClassificationRequest.CodingKeys.self), Set(spec.properties("ClassificationRequest").keys))
        XCTAssertEqual(names(ReconstructionRequest.CodingKeys.self), Set(spec.properties("ReconstructionRequest").keys))
        // Every option but `input` is also a query parameter, and the contract lists each.
        for (path, keys) in [("/v1/embeddings", names(EmbeddingRequest.CodingKeys.self)), ("/v1/classifications", names(ClassificationRequest.CodingKeys.self)),
                             ("/v1/reconstructions", names(ReconstructionRequest.CodingKeys.self)), ("/v1/tokens", names(TokenRequest.CodingKeys.self))] {
            XCTAssertEqual(Set(spec.queryParameters(path)), keys.subtracting(["input"]), path)
        }
        XCTAssertEqual(spec.enumeration("EmbeddingRequest", "pooling"), cases(Pooling.self))
        XCTAssertEqual(spec.enumeration("EmbeddingRequest", "encoding_format"), cases(EncodingFormat.self))
        XCTAssertEqual(spec.enumeration("ReconstructionRequest", "masking"), cases(MaskingSpec.self))
        XCTAssertEqual(spec.enumeration("ReconstructionRequest", "stats"), cases(ReconstructionStats.self))
        XCTAssertEqual(spec.enumeration("ReconstructionResponse", "stats"), cases(ReconstructionStats.self))
        XCTAssertEqual(spec.enumeration("ReconstructionResponse", "masking"), cases(ReconstructionResponse.Masking.self))
        XCTAssertEqual(spec.enumeration("Model", "capabilities"), cases(Capability.self))

        // Real answers: every key is a property of the schema, every required property is there.
        let input = photo.base64EncodedString()
        let answers: [(String, [String: Any]?)] = [
            ("EmbeddingResponse", post("/v1/embeddings", #"{"input": "\#(input)"}"#).json),
            ("ClassificationResponse", post("/v1/classifications", #"{"input": "\#(input)"}"#).json),
            ("ReconstructionResponse", post("/v1/reconstructions", #"{"input": "\#(input)"}"#, accept: "application/json").json),
            ("ReconstructionResponse", post("/v1/reconstructions", #"{"input": "\#(input)", "mask": [1]}"#, accept: "application/json").json),
            ("Model", call("GET", "/v1/models/bootmae").json),
            ("Model", call("GET", "/v1/models/classifier").json),
            ("ErrorResponse", post("/v1/embeddings", "{}").json),
        ]
        for (schema, json) in answers {
            let keys = try Set(XCTUnwrap(json, schema).keys)
            XCTAssertTrue(keys.isSubset(of: Set(spec.properties(schema).keys)), "\(schema): \(keys.sorted())")
            XCTAssertFalse(spec.required(schema).isEmpty, schema)
            XCTAssertTrue(Set(spec.required(schema)).isSubset(of: keys), "\(schema): \(keys.sorted())")
        }
    }

    /// JSONEncoder writes what JSONSerialization wrote for the same values, byte for byte, and an
    /// embedding's numbers are its float32 values exactly.
    func testResponsesAreWhatJSONSerializationWrote() throws {
        let two = #"["\#(photo.base64EncodedString())", "\#(png.base64EncodedString())"]"#
        let bodies: [[UInt8]] = [
            post("/v1/embeddings", #"{"input": \#(two), "pooling": "mean"}"#).response.body,
            post("/v1/embeddings", #"{"input": \#(two), "normalize": true, "model": "bootmae"}"#).response.body,
            post("/v1/embeddings", #"{"input": \#(two), "encoding_format": "base64"}"#).response.body,
            post("/v1/classifications", #"{"input": \#(two), "top_k": 50}"#).response.body,
            post("/v1/reconstructions", #"{"input": "\#(photo.base64EncodedString())", "seed": 2}"#, accept: "application/json").response.body,
            post("/v1/reconstructions", #"{"input": "\#(png.base64EncodedString())", "mask": [0, 9]}"#, accept: "application/json").response.body,
            call("GET", "/v1/models").response.body,
            post("/v1/embeddings", #"{"input": 5}"#).response.body,
            post("/v1/embeddings", "[]").response.body,
            call("GET", "/healthz").response.body,
        ]
        for body in bodies {
            let object = try JSONSerialization.jsonObject(with: Data(body))
            let old = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            XCTAssertEqual(String(decoding: old, as: UTF8.self), String(decoding: body, as: UTF8.self))
        }
        let embedding = try JSONDecoder().decode(EmbeddingResponse.self, from: Data(bodies[0]))
        XCTAssertEqual(embedding.data.count, 2)
        for item in embedding.data {
            guard case .float(let values) = item.embedding else { return XCTFail("numbers") }
            XCTAssertEqual(values, values.map { Double(Float($0)) }, "each number is a float32 value")
        }
    }
}

/// Just enough of openapi.yaml's layout (two-space indents, one property per line) to read a
/// schema's properties, required keys and enums, and a path's query parameters.
struct OpenAPISchemas {
    let lines: [Substring]

    init(_ url: URL) throws {
        lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
    }

    private func section(_ header: String, indent: Int) -> ArraySlice<Substring> {
        guard let start = lines.firstIndex(of: Substring(String(repeating: " ", count: indent) + header + ":")) else { return [] }
        let end = lines[(start + 1)...].firstIndex { line in
            let depth = line.prefix { $0 == " " }.count
            return depth <= indent && !line.trimmingCharacters(in: .whitespaces).isEmpty
        } ?? lines.endIndex
        return lines[(start + 1)..<end]
    }

    /// Property name → the rest of its line.
    func properties(_ schema: String) -> [String: String] {
        var out: [String: String] = [:]
        var inProperties = false
        for line in section(schema, indent: 4) {
            let depth = line.prefix { $0 == " " }.count
            if depth == 6 { inProperties = line.hasPrefix("      properties:") }
            else if depth == 8, inProperties, let colon = line.firstIndex(of: ":") {
                out[line[line.index(line.startIndex, offsetBy: 8)..<colon].description] = String(line[line.index(after: colon)...])
            }
        }
        return out
    }

    func required(_ schema: String) -> [String] {
        section(schema, indent: 4).first { $0.hasPrefix("      required:") }.map(Self.list) ?? []
    }

    func enumeration(_ schema: String, _ property: String) -> [String] {
        properties(schema)[property].map { Self.list(Substring($0.components(separatedBy: "enum:").dropFirst().first ?? "")) } ?? []
    }

    func queryParameters(_ path: String) -> [String] {
        section(path, indent: 2).compactMap { line in
            guard line.contains("in: query"), let name = line.components(separatedBy: "name: ").dropFirst().first else { return nil }
            return name.components(separatedBy: ",").first
        }
    }

    /// A schema's `enum` written as a block list (one `- item` per line).
    func blockEnumeration(_ schema: String) -> [String] {
        let body = section(schema, indent: 4)
        guard let start = body.firstIndex(of: "      enum:") else { return [] }
        return body[(start + 1)...].prefix { $0.hasPrefix("        - ") }.map { $0.dropFirst(10).trimmingCharacters(in: .whitespaces) }
    }

    /// Each operation's `x-error-codes` under `path`, by method.
    func errorCodes(_ path: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        var method = ""
        for line in section(path, indent: 2) {
            if line.hasPrefix("    ") && !line.hasPrefix("     "), let colon = line.firstIndex(of: ":") { method = line[..<colon].trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("      x-error-codes:") { out[method] = Self.list(line) }
        }
        return out
    }

    /// The items of the first `[a, b, c]` on a line.
    static func list(_ text: Substring) -> [String] {
        guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return [] }
        return text[text.index(after: open)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
