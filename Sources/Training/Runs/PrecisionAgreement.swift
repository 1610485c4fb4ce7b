import Foundation
import Tensor
import ViT

/// How far a low-precision copy of a model moves its answers from the fp32 model's, image by image:
/// the cosine between the two embeddings (the vector `/v1/embeddings` returns) and, for classifiers,
/// whether both pick the same class. What a user checks before serving a model in bf16, on their
/// own images; the numbers behind the bf16 accuracy statements in docs/PERFORMANCE.md.
public enum PrecisionAgreement {
    public struct Result: Codable, Sendable, Equatable {
        public var images: Int
        /// The candidate's GEMM kernel (e.g. bf16-avx512) and the reference's.
        public var kernel: String
        public var referenceKernel: String
        public var cosineMin: Double
        /// The 0.1th percentile: the minimum without the rarest outliers.
        public var cosineP001: Double
        public var cosineMean: Double
        /// Dataset index of the image with the lowest cosine.
        public var worstImage: Int
        /// Classifiers: the share of images whose top-1 class is the same in both; nil otherwise.
        public var top1Agreement: Double?
        /// Classifiers with labelled images: top-1 of each.
        public var referenceTop1: Double?
        public var candidateTop1: Double?
        /// The images compared (set by the caller, which knows the dataset's path).
        public var data: MeasuredData? = nil
    }

    /// Runs `reference` and `candidate` (the same weights, packed differently) over the first `limit`
    /// images of `dataset` (all by default) with the model's own preprocessing.
    public static func measure(reference: VisionTransformer, candidate: VisionTransformer, dataset: any ImageDataset,
                               batchSize: Int, limit: Int? = nil, progress: ProgressReporter? = nil) throws -> Result {
        let c = reference.config
        let data: any ImageDataset = limit.map { SubsetDataset(dataset, count: min($0, dataset.count)) } ?? dataset
        let loader = Evaluation.inferenceLoader(c, dataset: data, batchSize: batchSize)
        var cosines: [Double] = []
        var same = 0, referenceRight = 0, candidateRight = 0, labelled = 0
        let classifies = reference.head != nil && candidate.head != nil
        // Labels index the dataset's classes; they score the heads when both lists are the same (or
        // the dataset's classes are only numbered, as IDX files without names: the model's order).
        let scored = c.labels.map { data.classes == $0 || data.classes == data.classes.indices.map(String.init) } ?? true
        while let batch = try loader.next() {
            let a = reference.embed(batch.images), b = candidate.embed(batch.images)
            let dim = a.lastDim
            a.withPointer { pa in
                b.withPointer { pb in
                    for row in 0..<(a.count / dim) { cosines.append(cosine(pa + row * dim, pb + row * dim, count: dim)) }
                }
            }
            if classifies, let la = reference.classify(a), let lb = candidate.classify(b) {
                let pa = CrossEntropy.argmax(la), pb = CrossEntropy.argmax(lb)
                for (i, label) in batch.labels.enumerated() {
                    if pa[i] == pb[i] { same += 1 }
                    guard scored, label >= 0 else { continue }
                    labelled += 1
                    if pa[i] == label { referenceRight += 1 }
                    if pb[i] == label { candidateRight += 1 }
                }
            }
            progress?.update(label: "compare", done: cosines.count, total: data.count, text: "", eta: nil)
        }
        guard !cosines.isEmpty else { throw Evaluation.EvaluationError(description: "the dataset has no images to compare on") }
        let sorted = cosines.sorted()
        let n = Double(cosines.count)
        return Result(images: cosines.count, kernel: candidate.inferenceKernel.rawValue,
                      referenceKernel: reference.inferenceKernel.rawValue,
                      cosineMin: sorted[0], cosineP001: sorted[Int(0.001 * (n - 1))],
                      cosineMean: cosines.reduce(0, +) / n,
                      worstImage: cosines.indices.min { cosines[$0] < cosines[$1] }!,
                      top1Agreement: classifies ? Double(same) / n : nil,
                      referenceTop1: labelled > 0 ? Double(referenceRight) / Double(labelled) : nil,
                      candidateTop1: labelled > 0 ? Double(candidateRight) / Double(labelled) : nil)
    }

    /// Cosine of two float vectors, summed in Double.
    static func cosine(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<count {
            let (x, y) = (Double(a[i]), Double(b[i]))
            dot += x * y; na += x * x; nb += y * y
        }
        return na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : (na == nb ? 1 : 0)
    }
}
