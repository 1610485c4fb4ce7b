import Foundation

/// Turns request bodies into image bytes: JSON with base64 strings or data URIs, raw image bodies,
/// and multipart/form-data file parts.
enum ImageInputs {
    /// Decodes one JSON `input` item: a base64 string or a `data:image/...;base64,` URI.
    static func decode(_ item: String?, index: Int?, param name: String = "input") throws -> [UInt8] {
        let param = index.map { "\(name)[\($0)]" } ?? name
        guard var text = item else {
            throw APIError.invalid("\(param) must be a string: base64 image bytes or a data URI", param: param)
        }
        if text.prefix(5).lowercased() == "data:" {  // URI schemes are case-insensitive
            guard let comma = text.firstIndex(of: ",") else { throw APIError.invalid("\(param) is a data URI without data", param: param) }
            let header = text[text.index(text.startIndex, offsetBy: 5)..<comma].lowercased()
            guard header.hasSuffix(";base64") else {
                throw APIError.invalid("\(param): only base64 data URIs are accepted (data:image/png;base64,...)", param: param)
            }
            // The media type, without parameters such as ;name=photo.png.
            let mime = header.dropLast(";base64".count).split(separator: ";", omittingEmptySubsequences: false).first ?? ""
            if !mime.isEmpty && !["image/png", "image/jpeg", "image/jpg", "application/octet-stream"].contains(String(mime)) {
                throw APIError.unsupportedMedia("\(param) has media type \(mime); send image/png or image/jpeg", param: param)
            }
            text = String(text[text.index(after: comma)...])
        } else if text.hasPrefix("http://") || text.hasPrefix("https://") {
            throw APIError.invalid("\(param) is a URL; this server does not fetch images: "
                                   + "send the image bytes as base64 or a data URI", param: param)
        }
        guard let data = Data(base64Encoded: text, options: [.ignoreUnknownCharacters]), !data.isEmpty,
              text.allSatisfy({ $0.isLetter || $0.isNumber || "+/=\n\r ".contains($0) }) else {
            throw APIError.invalid("\(param) is not valid base64", param: param)
        }
        return [UInt8](data)
    }

    /// A JSON object body as the request type `Body`, the query's strings behind its own fields.
    static func json<Body: ImageRequest>(_ type: Body.Type, _ request: ServiceRequest) throws -> Body {
        guard !request.body.isEmpty else { throw APIError.invalid("the request body is empty; send a JSON object") }
        let decoder = JSONDecoder()
        decoder.userInfo[RequestFields.fallbackKey] = request.query
        do {
            return try decoder.decode(Body.self, from: Data(request.body))
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.invalid("the request body is not valid JSON")
        }
    }

    /// `multipart/form-data`: the bodies of its parts that carry a file (or any part named input/file/image).
    static func multipart(_ request: ServiceRequest) throws -> (files: [[UInt8]], fields: [String: String]) {
        guard let header = request.header("content-type"),
              let boundaryParam = header.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
                .first(where: { $0.lowercased().hasPrefix("boundary=") }) else {
            throw APIError.invalid("multipart/form-data needs a boundary parameter")
        }
        var boundary = String(boundaryParam.dropFirst("boundary=".count))
        if boundary.hasPrefix("\"") && boundary.hasSuffix("\"") && boundary.count >= 2 { boundary = String(boundary.dropFirst().dropLast()) }
        guard !boundary.isEmpty, boundary.count <= 70 else { throw APIError.invalid("invalid multipart boundary") }
        let delimiter = Array("--\(boundary)".utf8)
        let body = request.body
        var files: [[UInt8]] = [], fields: [String: String] = [:], repeated: Set<String> = []
        var positions: [Int] = []
        var i = 0
        while let found = find(delimiter, in: body, from: i) { positions.append(found); i = found + delimiter.count }
        guard positions.count >= 2 else { throw APIError.invalid("multipart body has no parts (boundary \(boundary))") }
        for (start, end) in zip(positions, positions.dropFirst()) {
            var partStart = start + delimiter.count
            if partStart + 1 < body.count && body[partStart] == 13 && body[partStart + 1] == 10 { partStart += 2 }
            var partEnd = end
            if partEnd >= 2 && body[partEnd - 2] == 13 && body[partEnd - 1] == 10 { partEnd -= 2 }
            guard partStart <= partEnd, let split = find(Array("\r\n\r\n".utf8), in: body, from: partStart), split <= partEnd else {
                throw APIError.invalid("malformed multipart part")
            }
            let headerText = String(decoding: body[partStart..<split], as: UTF8.self).lowercased()
            // Headers that end right at the next boundary ("...\r\n\r\n--B") share their CRLF with it: no content.
            let content = Array(body[min(split + 4, partEnd)..<partEnd])
            let disposition = headerText.split(separator: "\r\n").first { $0.hasPrefix("content-disposition:") } ?? ""
            let name = value(of: "name", in: String(disposition))
            if name == "mask" && (disposition.contains("filename=") || headerText.contains("content-type: image/")) {
                // A mask image travels as the string a JSON body would send: a data URI.
                if fields["mask"] != nil { repeated.insert("mask") }
                fields["mask"] = "data:application/octet-stream;base64," + Data(content).base64EncodedString()
            } else if disposition.contains("filename=") || headerText.contains("content-type: image/") || ["input", "file", "image"].contains(name ?? "") {
                files.append(content)
            } else if let name {
                if fields[name] != nil { repeated.insert(name) }
                fields[name] = String(decoding: content, as: UTF8.self)
            }
        }
        try RequestFields.refuseRepeated(repeated.sorted(), in: "the form")
        return (files, fields)
    }

    static func value(of key: String, in header: String) -> String? {
        for item in header.split(separator: ";") {
            let t = item.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("\(key)=") {
                var v = String(t.dropFirst(key.count + 1))
                if v.hasPrefix("\"") && v.hasSuffix("\"") && v.count >= 2 { v = String(v.dropFirst().dropLast()) }
                return v
            }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        let first = needle[0]
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
