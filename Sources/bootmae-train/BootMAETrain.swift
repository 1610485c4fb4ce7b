import ArgumentParser
import Objectives

@main
struct BootMAETrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmae-train",
        abstract: "Train, evaluate and export masked-image-modeling vision transformers (BootMAE, MAE, iBOT, LoMaR, PeCo).",
        discussion: """
            A typical flow: pretrain → eval / knn / linprobe (frozen features) → finetune → eval → export into \
            models/ for bootmae-serve. Every training command resumes with --resume and saves on Ctrl-C.
            """,
        subcommands: [Pretrain.self, LinProbe.self, KNN.self, Finetune.self, Evaluate.self, TokenizerEval.self, Export.self, Calibrate.self, Embed.self, PrecisionCheck.self, Plot.self])

    /// A misspelt command gets "did you mean …?" instead of ArgumentParser's complaint about the first
    /// option after it (`bootmae-train pretrian --out r` would say "Unknown option '--out'").
    static func main() {
        if let word = CommandLine.arguments.dropFirst().first, let error = unknownCommand(word) { exit(withError: error) }
        main(nil)
    }

    /// The error for a first argument that is neither an option nor a command, nil otherwise.
    static func unknownCommand(_ word: String) -> ValidationError? {
        let commands = configuration.subcommands.map { $0._commandName } + ["help"]
        guard !word.hasPrefix("-"), !commands.contains(word) else { return nil }
        let guess = NameSuggestion.closest(to: word, among: commands).map { "; did you mean '\($0)'?" } ?? "."
        return ValidationError("unknown command '\(word)'\(guess) The commands: \(commands.joined(separator: ", ")).")
    }
}
