import ViT

/// The checks every objective with a pixel decoder (MAE, BootMAE) makes of its config, worded with
/// config.json's keys. Their encoders see the visible patches only.
public enum DecoderChecks {
    public static func errors(width: Int, depth: Int, heads: Int, encoder: ViTConfig, masked: Int) -> [String] {
        var errors: [String] = []
        if width <= 0 || depth <= 0 { errors.append("decoder_embed_dim and decoder_depth must be positive") }
        if heads <= 0 || width / heads == 0 { errors.append("decoder_embed_dim \(width) is smaller than its \(heads) heads") }
        if width % 4 != 0 { errors.append("decoder_embed_dim \(width) must be divisible by 4 (2-D sin-cos positions)") }
        // Only once the patch grid itself is valid: otherwise the count says nothing.
        if encoder.validationErrors().isEmpty && errors.isEmpty && (masked <= 0 || masked >= encoder.numPatches) {
            errors.append("the mask must hide between 1 and \(encoder.numPatches - 1) patches, got \(masked)")
        }
        // The visible patches are a scattered subset of the grid; iRPE's buckets read the rows as a
        // class token and a whole square grid (irpe.py `_get_rp_bucket`).
        if let relative = encoder.relativePosition {
            errors.append("relative_position \"\(relative.rawValue)\" needs whole images or windows, but this objective "
                          + "encodes the visible patches only: remove it (LoMaR is the objective with relative positions)")
        }
        return errors
    }
}
