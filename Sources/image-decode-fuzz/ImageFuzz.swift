// Fuzzes the image path every served or trained image takes (scripts/fuzz-images.sh): CImageCodecs'
// PNG/JPEG decoders through ImageKit (EXIF orientation, pixel limit from the header), then resize →
// center crop → normalize for a gray and an RGB model, then a PNG round trip. Built with
// `-DIMAGE_FUZZ` and `-sanitize=fuzzer,address,undefined` it is a libFuzzer target; in a normal build
// it replays files or directories of inputs (a crash reproducer, Tests/Fixtures/images) through the
// same checks.
import Foundation
import FuzzSupport
import ImageKit

/// Small enough that a lying header costs nothing; larger than every seed.
let maxPixels = 1 << 20
let gray = ImagePreprocessor(imageSize: 28, channels: 1, mean: [0.5], std: [0.5])
let rgb = ImagePreprocessor(imageSize: 32, channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], cropPct: 0.875)

/// Traps on any broken property, so the fuzzer records the input. Errors thrown by the decoder are
/// the expected answer to bad bytes; crashes, sanitizer reports, leaks and these traps are not.
func check(_ bytes: [UInt8]) {
    guard let image = try? ImageDecoder.decode(bytes, maxPixels: maxPixels) else { return }
    guard image.width > 0, image.height > 0, image.width * image.height <= maxPixels,
          image.pixels.count == image.width * image.height * image.channels else {
        fatalError("decoded image is inconsistent: \(image.width)x\(image.height)x\(image.channels), \(image.pixels.count) bytes")
    }
    for p in [gray, rgb] {
        let tensor = p.tensorCHW(image)
        guard tensor.count == p.tensorCount, tensor.allSatisfy({ $0.isFinite }) else {
            fatalError("preprocessed tensor is wrong: \(tensor.count) values for \(p.tensorCount), or not finite")
        }
    }
    // What the service sends back (reconstruction strips) must decode to what was encoded.
    guard image.width * image.height <= 1 << 16 else { return }
    do {
        let again = try ImageDecoder.decode(try PNGEncoder.encode(image), maxPixels: maxPixels, applyOrientation: false)
        guard again == image else { fatalError("PNG round trip changed the image (\(image.width)x\(image.height)x\(image.channels))") }
    } catch {
        fatalError("a decoded image does not round-trip through PNG: \(error)")
    }
}

#if IMAGE_FUZZ
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    check(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_cdecl("image_decode_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzHarness.runDriver(argc, argv, fuzzOneInput)
}
#else
@main
enum Replay {
    static func main() { FuzzHarness.replay(usage: "image-decode-fuzz FILE|DIR...   (replays inputs through the decode → preprocess → PNG checks)", check) }
}
#endif
