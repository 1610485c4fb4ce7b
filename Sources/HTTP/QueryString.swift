/// One `name=value` pair of a query string, percent-decoded.
public struct QueryItem: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public enum PercentDecoding {
    /// Decodes `%XX` escapes (and `+` as a space when asked, as in form-encoded queries).
    /// Returns nil for a malformed escape or bytes that are not UTF-8.
    public static func decode(_ s: Substring, plusAsSpace: Bool = false) -> String? {
        let utf8 = s.utf8
        if !utf8.contains(UInt8(ascii: "%")) && !(plusAsSpace && utf8.contains(UInt8(ascii: "+"))) {
            return String(s)
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let b = utf8[i]
            if b == UInt8(ascii: "%") {
                let h = utf8.index(after: i)
                guard h != utf8.endIndex, let hi = hexValue(utf8[h]) else { return nil }
                let l = utf8.index(after: h)
                guard l != utf8.endIndex, let lo = hexValue(utf8[l]) else { return nil }
                out.append(hi << 4 | lo)
                i = utf8.index(after: l)
                continue
            }
            out.append(plusAsSpace && b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
            i = utf8.index(after: i)
        }
        return String(validating: out, as: UTF8.self)
    }

    @inline(__always) static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

enum QueryString {
    /// `a=1&b=x%20y&flag` → [(a,1), (b,"x y"), (flag,"")]. `+` means space. A component whose
    /// escapes are malformed is kept as sent rather than failing the whole request.
    static func parse(_ query: String?) -> [QueryItem] {
        guard let query, !query.isEmpty else { return [] }
        var items: [QueryItem] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let rawName = pair[0]
            let rawValue = pair.count > 1 ? pair[1] : Substring("")
            items.append(QueryItem(
                name: PercentDecoding.decode(rawName, plusAsSpace: true) ?? String(rawName),
                value: PercentDecoding.decode(rawValue, plusAsSpace: true) ?? String(rawValue)))
        }
        return items
    }
}
