import Foundation
import ImageKit
import Tensor
import ViT

/// Turns image files into the normalized (B, C, H, W) batches a model's config asks for.
struct ModelInput {
    let config: ViTConfig
    let preprocessor: ImagePreprocessor

    init(config: ViTConfig) {
        self.config = config
        preprocessor = ImagePreprocessor(imageSize: config.imgSize, channels: config.inChans,
                                         mean: config.mean, std: config.std, cropPct: config.cropPct ?? 1)
    }

    /// Reads, decodes and preprocesses one image into CHW floats.
    func load(path: String) throws -> [Float] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { throw InputError("no such file") }
        if isFolder.boolValue { throw InputError("a folder, not an image file: give its images (e.g. \(path)/*.png)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw InputError("cannot read the file (permissions?)") }
        return preprocessor.tensorCHW(try ImageDecoder.decode([UInt8](data)))
    }

    func batch(_ items: [[Float]]) -> Tensor {
        Tensor(shape: [items.count, config.inChans, config.imgSize, config.imgSize], data: items.flatMap { $0 })
    }
}

struct InputError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// NumPy's .npy format (version 1.0), little-endian float32, C order.
enum NPY {
    static func encode(_ values: [Float], shape: [Int]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic (6) + version (2) + length (2) + header must be a multiple of 64, ending in '\n'.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        out.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        out.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }
}
