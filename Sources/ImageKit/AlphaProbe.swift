/// Whether an encoded image carries transparency, which decoding drops (`ImageDecoder` returns gray
/// or RGB): a PNG with a gray+alpha or RGBA colour type, or with a tRNS chunk before its image
/// data. JPEG has no alpha.
public enum AlphaProbe {
    public static func hasAlpha(_ bytes: [UInt8]) -> Bool {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 33, Array(bytes[0..<8]) == signature else { return false }
        func u32(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var at = 8
        while at + 8 <= bytes.count {
            let length = u32(at)
            let type = String(decoding: bytes[(at + 4)..<(at + 8)], as: UTF8.self)
            switch type {
            case "IHDR":
                guard at + 8 + 10 <= bytes.count else { return false }
                let colourType = bytes[at + 8 + 9]
                if colourType == 4 || colourType == 6 { return true }
            case "tRNS": return true
            case "IDAT", "IEND": return false
            default: break
            }
            guard length >= 0, length <= bytes.count else { return false }
            at += 12 + length
        }
        return false
    }
}
