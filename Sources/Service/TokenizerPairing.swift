import Foundation
import Objectives

/// How a stage-2 model (a `CodePredicting` export, PeCo) finds the tokenizer it was trained
/// against among the served models: its config.json `tokenizer` names it (an exported config: the
/// tokenizer export's directory name; an older or run config: the path it had at training time),
/// and the served tokenizer is the model whose directory name is that name's last component. When
/// the config records `tokenizer_sha256` (the weights file stage 2 trained on), the served
/// tokenizer's `weights_sha256` must be it: another export of the same tokenizer run (fp16) gives
/// other codes at near-ties. The two must also agree on the codebook size and on what the images
/// become (size, patch, channels, mean, std). A missing or different tokenizer is the operator's
/// to fix: a 503 `server_error` that says what differs and what to serve.
extension ModelRegistry {
    /// What reconstructs `model`'s masked images: its own pixel decoder, or for a code predictor
    /// the paired tokenizer's decoder (a 503 naming what is missing when it is not served); nil
    /// when the model can do neither.
    func reconstructor(for model: LoadedModel) throws -> (any PixelReconstructing)? {
        guard let network = model.network else { return nil }
        if let own = network.reconstructor { return own }
        guard let predictor = network.codePredictor else { return nil }
        return TokenDecodedReconstructor(predictor: predictor, tokenizer: try pairedTokenizer(for: model, predictor).network!.tokenizer!)
    }

    /// Whether `model` reconstructs now (with the models served at this moment).
    func canReconstruct(_ model: LoadedModel) -> Bool { (try? reconstructor(for: model)) != nil }

    /// The served tokenizer a code predictor names, checked against it.
    func pairedTokenizer(for model: LoadedModel, _ predictor: any CodePredicting) throws -> LoadedModel {
        guard let reference = predictor.tokenizerReference, let name = Self.tokenizerName(of: predictor) else {
            throw APIError.misconfigured("model '\(model.id)' predicts a tokenizer's codes but its config.json names no tokenizer",
                                         code: "tokenizer_not_loaded", param: "model")
        }
        let served = models
        guard let tokenizer = served[name], let codes = tokenizer.network?.tokenizer else {
            let loaded = served.values.filter(\.canTokenize).map(\.id).sorted()
            throw APIError.misconfigured("model '\(model.id)' reconstructs through the codes of the tokenizer '\(name)' (config.json tokenizer: "
                + "\(reference)), which is not loaded; put that tokenizer's export in the models folder as '\(name)'"
                + (loaded.isEmpty ? "" : " (loaded tokenizers: \(loaded.joined(separator: ", ")))"),
                code: "tokenizer_not_loaded", param: "model")
        }
        let differences = predictor.pairingDifferences(encoder: model.config, tokenizer: codes, tokenizerEncoder: tokenizer.config,
                                                       weightsSHA256: tokenizer.weightsSHA256)
        guard differences.isEmpty else {
            throw APIError.misconfigured("the served tokenizer '\(name)' is not the one model '\(model.id)' was trained against: "
                + differences.joined(separator: "; ") + ". Serve the export the model was trained with as '\(name)'; an fp16 "
                + "re-export (--half) of the tokenizer gives different codes", code: "tokenizer_mismatch", param: "model")
        }
        return tokenizer
    }
}
