extension Image {
    /// The `width` x `height` region whose top-left corner is (`x`, `y`). Parts of the region
    /// outside the image are filled with `fill`.
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int, fill: UInt8 = 0) -> Image {
        let c = channels
        // Columns of the crop that overlap the image, in crop coordinates.
        let firstColumn = max(0, -x), lastColumn = min(cropWidth, width - x)
        return pixels.withUnsafeBufferPointer { source in
            Image(width: cropWidth, height: cropHeight, channels: c) { output in
                output.initialize(repeating: fill)
                guard firstColumn < lastColumn else { return }
                let rowBytes = (lastColumn - firstColumn) * c
                for row in 0..<cropHeight where (0..<height).contains(y + row) {
                    let from = ((y + row) * width + x + firstColumn) * c
                    let to = (row * cropWidth + firstColumn) * c
                    _ = UnsafeMutableBufferPointer(rebasing: output[to..<(to + rowBytes)])
                        .update(fromContentsOf: source[from..<(from + rowBytes)])
                }
            }
        }
    }

    /// The centre `width` x `height` region, placed as torchvision's `CenterCrop` does:
    /// offset = round((size - crop) / 2) with Python's round-half-to-even, and zero padding
    /// split as (crop - size) // 2 before when the crop is larger than the image.
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) -> Image {
        let region = Image.centerCropOrigin(imageWidth: width, imageHeight: height,
                                            cropWidth: cropWidth, cropHeight: cropHeight)
        return cropped(x: region.x, y: region.y, width: cropWidth, height: cropHeight)
    }

    /// Top-left corner of torchvision's centre crop (negative where it pads).
    static func centerCropOrigin(imageWidth: Int, imageHeight: Int, cropWidth: Int, cropHeight: Int)
        -> (x: Int, y: Int)
    {
        func offset(_ size: Int, _ crop: Int) -> Int {
            if crop > size { return -((crop - size) / 2) }
            return Int((Double(size - crop) / 2).rounded(.toNearestOrEven))
        }
        return (offset(imageWidth, cropWidth), offset(imageHeight, cropHeight))
    }
}
