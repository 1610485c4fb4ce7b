extension Image {
    /// The image resized with Pillow's BICUBIC filter (`Image.resize(size, Image.BICUBIC)`),
    /// antialiased when downscaling.
    public func resized(width newWidth: Int, height newHeight: Int) -> Image {
        resized(width: newWidth, height: newHeight, keeping: (0, 0, newWidth, newHeight))
    }

    /// Equal to `resized(width:height:).cropped(...)` for a `region` inside the resized image,
    /// but computes only the pixels in the region (and the input rows they need).
    func resized(width newWidth: Int, height newHeight: Int,
                 keeping region: (x: Int, y: Int, width: Int, height: Int)) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "resize target must be positive, got \(newWidth)x\(newHeight)")
        precondition(region.x >= 0 && region.y >= 0 && region.width > 0 && region.height > 0
                     && region.x + region.width <= newWidth && region.y + region.height <= newHeight,
                     "region must lie inside the resized image")
        let columns = BicubicWeights(inputSize: width, outputSize: newWidth,
                                     outputs: region.x..<(region.x + region.width))
        let rows = BicubicWeights(inputSize: height, outputSize: newHeight,
                                  outputs: region.y..<(region.y + region.height))
        // Pillow resamples horizontally first, rounding to bytes in between; so do we.
        let firstRow = rows.first.min()!
        let endRow = zip(rows.first, rows.count).map { $0 + $1 }.max()!
        let c = channels
        let wide = pixels.withUnsafeBufferPointer { source in
            [UInt8](unsafeUninitializedCapacity: (endRow - firstRow) * region.width * c) { output, count in
                Image.resampleRows(source, width: width, channels: c, rows: firstRow..<endRow,
                                   weights: columns, into: output)
                count = output.count
            }
        }
        return wide.withUnsafeBufferPointer { source in
            Image(width: region.width, height: region.height, channels: c) { output in
                Image.resampleColumns(source, rowLength: region.width * c, firstRow: firstRow,
                                      weights: rows, into: output)
            }
        }
    }

    /// Horizontal pass: each of `rows` of `source` becomes one row of `weights.first.count` pixels.
    private static func resampleRows(_ source: UnsafeBufferPointer<UInt8>, width: Int, channels: Int,
                                     rows: Range<Int>, weights: BicubicWeights,
                                     into output: UnsafeMutableBufferPointer<UInt8>) {
        let outputWidth = weights.first.count, stride = weights.stride
        weights.first.withUnsafeBufferPointer { first in
        weights.count.withUnsafeBufferPointer { count in
        weights.coefficients.withUnsafeBufferPointer { k in
            var o = 0
            for y in rows {
                let row = y * width * channels
                for x in 0..<outputWidth {
                    let start = row + first[x] * channels, taps = x * stride
                    if channels == 1 {
                        var sum = BicubicWeights.half
                        for t in 0..<count[x] { sum &+= Int32(source[start + t]) &* k[taps + t] }
                        output[o] = BicubicWeights.clampToByte(sum)
                    } else {
                        var r = BicubicWeights.half, g = r, b = r
                        for t in 0..<count[x] {
                            let p = start + 3 * t, w = k[taps + t]
                            r &+= Int32(source[p]) &* w
                            g &+= Int32(source[p + 1]) &* w
                            b &+= Int32(source[p + 2]) &* w
                        }
                        output[o] = BicubicWeights.clampToByte(r)
                        output[o + 1] = BicubicWeights.clampToByte(g)
                        output[o + 2] = BicubicWeights.clampToByte(b)
                    }
                    o += channels
                }
            }
        }}}
    }

    /// Vertical pass over rows of `rowLength` bytes (row 0 of `source` is input row `firstRow`).
    /// Whole rows are accumulated at once so the inner loop is a plain, vectorizable multiply-add.
    private static func resampleColumns(_ source: UnsafeBufferPointer<UInt8>, rowLength: Int, firstRow: Int,
                                        weights: BicubicWeights, into output: UnsafeMutableBufferPointer<UInt8>) {
        var sums = [Int32](repeating: 0, count: rowLength)
        sums.withUnsafeMutableBufferPointer { sums in
        weights.coefficients.withUnsafeBufferPointer { k in
            for y in 0..<weights.first.count {
                for i in 0..<rowLength { sums[i] = BicubicWeights.half }
                for t in 0..<weights.count[y] {
                    let w = k[y * weights.stride + t]
                    let row = (weights.first[y] - firstRow + t) * rowLength
                    for i in 0..<rowLength { sums[i] &+= Int32(source[row + i]) &* w }
                }
                let out = y * rowLength
                for i in 0..<rowLength { output[out + i] = BicubicWeights.clampToByte(sums[i]) }
            }
        }}
    }
}
