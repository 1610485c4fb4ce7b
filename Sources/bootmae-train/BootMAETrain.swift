import ArgumentParser

@main
struct BootMAETrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmae-train",
        abstract: "Train, evaluate and use BootMAE / MAE vision transformers.",
        discussion: "Pretraining and fine-tuning subcommands arrive with the trainer; `embed` runs a model directory on images.",
        subcommands: [Pretrain.self, LinProbe.self, KNN.self, Finetune.self, Evaluate.self, Export.self, Embed.self])
}
