import Foundation
import ImageKit

/// The image half of the serving path, in ms (medians): decode, resize, preprocess.
func imageTimings(fixtures: URL) throws {
    func median(_ runs: Int = 41, _ body: () throws -> Void) rethrows -> Double {
        var times = [Double]()
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return times.sorted()[runs / 2]
    }
    let jpeg = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("photo_512x384.jpg")))
    let photo = try ImageDecoder.decode(jpeg)
    let pre = ImagePreprocessor(imageSize: 224, channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], cropPct: 0.875)
    let small = try ImageDecoder.decode([UInt8](try Data(contentsOf: fixtures.appendingPathComponent("gray28.png"))))
    let pre32 = ImagePreprocessor(imageSize: 32, channels: 1, mean: [0.286], std: [0.353])
    var sink = 0
    let decode = try median { sink &+= try ImageDecoder.decode(jpeg).width }
    let resize = median { sink &+= photo.resized(width: 341, height: 256).width }
    let tensor = median { sink &+= pre.tensorCHW(photo).count }
    let whole = try median { sink &+= pre.tensorCHW(try ImageDecoder.decode(jpeg)).count }
    let tiny = try median(201) { sink &+= pre32.tensorCHW(try ImageDecoder.decode(PNGEncoder.encode(small))).count }
    print(String(format: "images: 512x384 JPEG decode %.3f ms | resize to 341x256 %.3f ms | preprocess to 224 %.3f ms | "
                 + "decode+preprocess %.3f ms | 28 px PNG encode+decode+preprocess to 32 %.4f ms", decode, resize, tensor, whole, tiny))
    if sink == 42 { print("") }
}
