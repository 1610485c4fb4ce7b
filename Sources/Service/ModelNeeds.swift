import Foundation
import Objectives

/// What a request asks of its model beyond an embedding, and the one place the service words the
/// 400 when the model cannot: why this model cannot, then the loaded models that can, or, when
/// none can, how to serve one.
enum ModelNeed {
    case reconstruct, tokenize, classify

    /// The verb in "no loaded model can …".
    var action: String {
        switch self {
        case .reconstruct: "reconstruct"
        case .tokenize: "tokenize"
        case .classify: "classify"
        }
    }

    var code: String {
        switch self {
        case .reconstruct: "model_cannot_reconstruct"
        case .tokenize: "model_cannot_tokenize"
        case .classify: "model_cannot_classify"
        }
    }

    /// What precedes the list of loaded models that can.
    var listLabel: String {
        self == .classify ? "classifiers" : "models that can"
    }

    /// The first words of the answer when no loaded model can.
    var noneLoaded: String {
        switch self {
        case .reconstruct: "no loaded model can reconstruct"
        case .tokenize: "no tokenizer is loaded"
        case .classify: "no loaded model can classify"
        }
    }

    /// How to get such a model served, for when no loaded model can: the run whose export has the
    /// capability, and how a models folder takes it in.
    var remedy: String {
        let export = "`bootmae-train export --run RUN --out DIR` into --models-dir "
            + "(read at start-up; while serving with --watch-models, or POST /v1/models/{id}/load with --model-control)"
        switch self {
        case .reconstruct:
            return "serve a pretraining run with a pixel decoder (BootMAE, MAE, LoMaR; or PeCo stage 2 beside its tokenizer): \(export)"
        case .tokenize:
            return "serve a `bootmae-train pretrain --objective peco-tokenizer` run: \(export)"
        case .classify:
            return "serve a `bootmae-train finetune` run: \(export)"
        }
    }
}

extension ModelRegistry {
    /// Whether `model` can do what `need` asks now (a stage-2 model reconstructs only while its
    /// tokenizer is served beside it).
    func capable(_ need: ModelNeed) -> (LoadedModel) -> Bool {
        switch need {
        case .reconstruct: canReconstruct
        case .tokenize: \.canTokenize
        case .classify: \.canClassify
        }
    }

    /// Why `model` cannot do what `need` asks, as words that follow "model 'id'". A tokenizer asked
    /// to reconstruct is pointed to its own decoding and to the stage-2 models that reconstruct
    /// through it; a stage-2 model asked for codes, to the tokenizer whose codes it predicts.
    func shortfall(of model: LoadedModel, for need: ModelNeed) -> String {
        switch need {
        case .reconstruct where model.canTokenize:
            let stage2 = stage2Models(of: model.id)
            return "is a tokenizer: POST /v1/tokens?decode=true returns its decoding of an image's codes; masked reconstructions "
                + "come from a stage-2 model trained on its codes (" + (stage2.isEmpty ? "none is loaded" : stage2.joined(separator: ", ")) + ")"
        case .reconstruct:
            return "has no pixel decoder"
        case .tokenize:
            if let name = model.network?.codePredictor.flatMap(Self.tokenizerName) {
                return "is not a tokenizer: it predicts the codes of the tokenizer '\(name)'"
            }
            return "is not a tokenizer and has no code grid"
        case .classify:
            return "has no classification head"
        }
    }

    /// The loaded stage-2 models that reconstruct through the tokenizer `id` (their config names it,
    /// and it fits them), sorted.
    func stage2Models(of id: String) -> [String] {
        models.values.filter { $0.network?.codePredictor.flatMap(Self.tokenizerName) == id && canReconstruct($0) }.map(\.id).sorted()
    }

    /// The model id (directory name) of the tokenizer a code predictor was trained against: the
    /// last path component of its config's `tokenizer`.
    static func tokenizerName(of predictor: any CodePredicting) -> String? {
        predictor.tokenizerReference.map { URL(fileURLWithPath: $0).lastPathComponent }
    }

    /// The 400 for a request whose model (named, or chosen by `model(_:capableOf:)`) cannot do what it
    /// asks. Named: "model 'id' <shortfall>; <listLabel>: a, b", or, when no loaded model can, how to
    /// serve one. Not named: about the default model the request fell to, not a model the user chose.
    func incapableModelError(_ model: LoadedModel, named: String?, need: ModelNeed) -> APIError {
        let able = models.values.filter(capable(need)).map(\.id).sorted()
        let shortfall = shortfall(of: model, for: need)
        let message: String
        if named != nil {
            message = "model '\(model.id)' \(shortfall); "
                + (able.isEmpty ? "\(need.noneLoaded): \(need.remedy)" : "\(need.listLabel): \(able.joined(separator: ", "))")
        } else if able.isEmpty {
            message = "\(need.noneLoaded): the default model '\(model.id)' \(shortfall); \(need.remedy)"
        } else {
            message = "no model was named and the default model '\(model.id)' \(shortfall); \(able.count) loaded models can \(need.action) "
                + "(\(able.joined(separator: ", "))): name one with 'model'"
        }
        return APIError.invalid(message, param: "model", code: need.code)
    }
}
