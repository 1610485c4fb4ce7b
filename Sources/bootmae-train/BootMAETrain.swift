import ArgumentParser

@main
struct BootMAETrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmae-train",
        abstract: "Train, evaluate and use BootMAE / MAE vision transformers.",
        discussion: """
            A typical flow: pretrain → eval / knn / linprobe (frozen features) → finetune → eval → export into \
            models/ for bootmae-serve. Every training command resumes with --resume and saves on Ctrl-C.
            """,
        subcommands: [Pretrain.self, LinProbe.self, KNN.self, Finetune.self, Evaluate.self, TokenizerEval.self, Export.self, Calibrate.self, Embed.self, PrecisionCheck.self, Plot.self])
}
