import ArgumentParser
import Graph

extension Kiln {
    struct Models: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the built-in networks, or print one as text IR.",
            discussion: """
                The files in models/ are this command's output; a built-in network is written
                with Kiln's Swift builder and verified before it is printed.

                Examples:
                  kiln models                                  # list them
                  kiln models resnet32-cifar > resnet32.kiln   # print one
                """
        )

        @Argument(help: "A built-in network: \(ModelZoo.names.joined(separator: ", ")).")
        var name: String?

        func run() throws {
            try reportingErrors {
                guard let name else {
                    for n in ModelZoo.names {
                        let g = try ModelZoo.model(named: n)!
                        emit("\(n)\t\(g.metadata["kiln.description"] ?? "")\n")
                    }
                    return
                }
                guard let g = try ModelZoo.model(named: name) else {
                    throw CLIError("no built-in network '\(name)' (there are: \(ModelZoo.names.joined(separator: ", ")))")
                }
                emit(TextFormat.print(g))
            }
        }
    }
}
