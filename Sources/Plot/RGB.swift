/// An opaque 8-bit sRGB colour for `Canvas` and `LinePlot`.
public struct RGB: Sendable, Hashable, CustomStringConvertible {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    /// `RGB(hex: 0x1f77b4)`.
    public init(hex: UInt32) {
        self.init(UInt8(truncatingIfNeeded: hex >> 16), UInt8(truncatingIfNeeded: hex >> 8), UInt8(truncatingIfNeeded: hex))
    }

    /// A gray level: 0 black, 255 white.
    public init(gray: UInt8) {
        self.init(gray, gray, gray)
    }

    public var description: String {
        let digits = Array("0123456789abcdef")
        return "#" + String([r, g, b].flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    public static let white = RGB(255, 255, 255)
    public static let black = RGB(0, 0, 0)

    /// matplotlib's "tab10" cycle: ten colours that stay distinct from each other on white.
    public static let tab10: [RGB] = [
        RGB(hex: 0x1f77b4), RGB(hex: 0xff7f0e), RGB(hex: 0x2ca02c), RGB(hex: 0xd62728), RGB(hex: 0x9467bd),
        RGB(hex: 0x8c564b), RGB(hex: 0xe377c2), RGB(hex: 0x7f7f7f), RGB(hex: 0xbcbd22), RGB(hex: 0x17becf),
    ]
}
