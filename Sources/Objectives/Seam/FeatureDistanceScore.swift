import Foundation
import Checkpoint
import Tensor

/// The feature-space out-of-distribution score: how far an image's embedding lies from the training
/// data's, as the distance from its L2-normalised embedding to the k-th nearest of a bank of training
/// images' L2-normalised embeddings (the deep k-NN detector of Sun et al., "Out-of-distribution detection
/// with deep nearest neighbors", ICML 2022). Unlike the reconstruction error, it does not reward an image
/// for being smooth: a photograph's gray thumbnail reconstructs well but lands far from every garment.
public struct FeatureBank: Sendable {
    public static let fileName = "ood_feature_bank.safetensors"
    static let tensorName = "bank"

    /// Row-major (count, dim), each row L2-normalised, then rounded to fp16 as stored.
    public let rows: [Float]
    public let dim: Int
    public var count: Int { dim == 0 ? 0 : rows.count / dim }

    /// From raw embeddings (count × dim): normalised, then rounded through fp16 so that the bank a
    /// calibration measures with is the one the server reads back.
    public init(embeddings: [Float], dim: Int) {
        precondition(dim > 0 && embeddings.count % dim == 0, "embeddings must be rows of \(dim)")
        var rows = embeddings
        for start in stride(from: 0, to: rows.count, by: dim) {
            let unit = Self.normalised(Array(rows[start..<start + dim]))
            for j in 0..<dim { rows[start + j] = Float(Float16(unit[j])) }
        }
        self.rows = rows; self.dim = dim
    }

    private init(storedRows: [Float], dim: Int) { rows = storedRows; self.dim = dim }

    /// `v / |v|`; a zero vector stays zero (its distance to every unit row is then 1).
    public static func normalised(_ v: [Float]) -> [Float] {
        let norm = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }

    /// The Euclidean distance from `embedding`, normalised, to its k-th nearest row (k = 1: the nearest).
    public func kthNearestDistance(_ embedding: [Float], k: Int) -> Double {
        precondition(embedding.count == dim, "an embedding of \(dim) values")
        precondition((1...count).contains(k), "k must be in 1...\(count)")
        let q = Self.normalised(embedding)
        var distances = [Double](repeating: 0, count: count)
        for i in 0..<count {
            var s = 0.0
            let base = i * dim
            for j in 0..<dim { let d = Double(q[j]) - Double(rows[base + j]); s += d * d }
            distances[i] = s.squareRoot()
        }
        // k is small: a partial selection would do, a sort of 1000 numbers costs microseconds.
        distances.sort()
        return distances[k - 1]
    }

    /// Writes the bank file (atomically) and returns its SHA-256 (hex), for the calibration to record.
    @discardableResult
    public func write(to directory: URL) throws -> String {
        let url = directory.appendingPathComponent(Self.fileName)
        try SafeTensorsWriter.write([(Self.tensorName, Tensor(shape: [count, dim], data: rows))], to: url, dtype: .f16)
        return Self.sha256(try Data(contentsOf: url))
    }

    /// The hex SHA-256 of a bank file's bytes: what a calibration records and `read` checks.
    static func sha256(_ bytes: Data) -> String {
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update($0) }
        return SHA256.hex(hasher.finish())
    }

    /// Reads a directory's bank; nil when it has none. With `sha256` (what the calibration recorded) a
    /// bank file with other bytes is refused: calibrate writes the bank and then the calibration, each
    /// atomically, so a run stopped between the two leaves a new bank beside the old distances.
    public static func read(_ directory: URL, sha256 expected: String? = nil) throws -> FeatureBank? {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        // One read for the hash and the tensor: the bytes checked are the bytes used.
        let bytes = try Data(contentsOf: url)
        if let expected {
            let actual = sha256(bytes)
            guard actual == expected.lowercased() else {
                throw CheckpointError.malformed(url.path, "this is not the bank ood_calibration.json was measured with (its SHA-256 differs: "
                                                + "\(actual.prefix(12))… here, \(expected.prefix(12))… recorded; a calibration stopped between writing "
                                                + "the two files, or a file copied from elsewhere); run `bootmae-train calibrate` on this model again")
            }
        }
        let t = try SafeTensorsFile(data: bytes, source: url.path).tensor(tensorName)
        guard t.shape.count == 2, t.shape[0] > 0, t.shape[1] > 0 else {
            throw CheckpointError.malformed(url.path, "'\(tensorName)' must be a non-empty (count, dim) matrix, not \(t.shape)")
        }
        return FeatureBank(storedRows: t.data, dim: t.shape[1])
    }
}

/// How the feature-space score was calibrated: the bank's size and source, k, the pooling whose
/// embeddings fill it, and the k-th-neighbour distances of held-out images, sorted. The `feature_space`
/// section of `ood_calibration.json`; the bank itself is `ood_feature_bank.safetensors` beside it.
public struct FeatureDistanceCalibration: Codable, Sendable, Equatable {
    public var metric = "knn_distance"
    public var k: Int
    public var pooling: String
    public var bankImages: Int
    /// Where the bank's images and the held-out images came from, for people.
    public var bankDataset: String
    public var dataset: String
    /// Ascending.
    public var distances: [Double]
    /// The SHA-256 (hex) of the bank file these distances were measured with; nil in calibrations
    /// written before it was recorded (their bank is then not checked).
    public var bankSHA256: String?

    public init(k: Int, pooling: String, bankImages: Int, bankDataset: String, dataset: String, distances: [Double],
                bankSHA256: String? = nil) {
        self.k = k; self.pooling = pooling; self.bankImages = bankImages; self.bankDataset = bankDataset
        self.dataset = dataset; self.distances = distances.sorted(); self.bankSHA256 = bankSHA256
    }

    enum CodingKeys: String, CodingKey {
        case metric, k, pooling, bankImages = "bank_images", bankDataset = "bank_dataset", dataset, distances, bankSHA256 = "bank_sha256"
    }

    /// The share of held-out images (in percent) whose distance is below `distance`, ties counted half.
    public func percentile(of distance: Double) -> Double { SortedRank.percentile(of: distance, in: distances) }
}

/// Where a value ranks among sorted calibration values: the one percentile rule both scores use.
public enum SortedRank {
    /// The share (0...100) of `sorted` below `value`, ties counted half; 0 for an empty list.
    public static func percentile(of value: Double, in sorted: [Double]) -> Double {
        guard !sorted.isEmpty else { return 0 }
        // Binary search for the first element ≥ value and the first > value.
        var lo = 0, hi = sorted.count
        while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] < value { lo = mid + 1 } else { hi = mid } }
        let below = lo
        hi = sorted.count
        while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] <= value { lo = mid + 1 } else { hi = mid } }
        return 100 * (Double(below) + 0.5 * Double(lo - below)) / Double(sorted.count)
    }
}
