import ArgumentParser
import Foundation
import Train

extension Kiln {
    struct ReportCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report",
            abstract: "Write training runs side by side as one self-contained HTML page.",
            discussion: """
                For each run folder (written by `kiln train`): the accuracy per epoch (training, validation top-1 and mean per-class, many/medium/few-shot), the training loss per epoch, the last epoch's per-class accuracy against each class's training images (log axis, coloured by shot group), its confusion matrix as a heat map (runs of up to 100 classes, trained since the matrix is kept in metrics.jsonl), and the run's settings. With several runs, a table and a chart compare their balanced accuracy. The page holds its charts as inline SVG and needs no network; it is written atomically. `kiln eval --report FILE.html` writes the same for one evaluation.

                Examples:
                  kiln report runs/ce runs/ldam-drw -o report.html
                  kiln report runs/lt --title "the lt recipe, seed 0" -o lt.html
                """
        )

        @Argument(help: "Run folders written by `kiln train`.")
        var runs: [String]
        @Option(name: .shortAndLong, help: "The .html file to write.")
        var output: String
        @Option(help: "The page's title.")
        var title: String = "Kiln training report"

        func validate() throws {
            guard !runs.isEmpty else { throw ValidationError("give at least one run folder") }
            guard output.lowercased().hasSuffix(".html") || output.lowercased().hasSuffix(".htm") else {
                throw ValidationError("\(output): the output must be an .html file")
            }
        }

        func run() throws {
            try reportingErrors {
                let loaded = try runs.map { try ReportRun.load(runDirectory: $0) }
                var names = Set<String>()
                let unique = loaded.map { r -> ReportRun in
                    var r = r
                    var n = r.name, k = 2
                    while names.contains(n) { n = "\(r.name) (\(k))"; k += 1 }
                    names.insert(n)
                    r.name = n
                    return r
                }
                try AtomicFile.write(Array(HTMLReport.training(runs: unique, title: title).utf8), to: output)
                emit("report written to \(output): \(unique.map { "\($0.name) (\($0.epochs.count) epochs)" }.joined(separator: ", "))\n")
            }
        }
    }
}
