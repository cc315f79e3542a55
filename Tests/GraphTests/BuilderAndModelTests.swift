import Foundation
import Graph
import Testing

@Suite("Builder, model zoo and statistics")
struct BuilderAndModelTests {
    @Test("ResNet-32 (CIFAR): 464,154 trainable parameters, 0.1377 GFLOP per image")
    func resnet32() throws {
        let s = try #require(try ModelZoo.model(named: "resnet32-cifar")).stats()
        // Cao et al. 2019 (../shared/LDAM-DRW.md): 463,504 backbone parameters; the Linear
        // head adds 64·10 + 10.
        #expect(s.trainableParameters == 463_504 + 64 * 10 + 10)
        // Multiply-adds by hand: stem 32²·16·27; stage 1: 10 convs of 32²·16·144; stages 2
        // and 3: one strided conv of 16²·32·144 (8²·64·288) and nine of 16²·32·288 (8²·64·576);
        // head 640.
        let macs = 32 * 32 * 16 * 27 + 10 * (32 * 32 * 16 * 144)
            + 16 * 16 * 32 * 144 + 9 * (16 * 16 * 32 * 288)
            + 8 * 8 * 64 * 288 + 9 * (8 * 8 * 64 * 576) + 640
        #expect(s.denseFlops == 2 * macs)
        #expect(String(format: "%.4f", Double(s.denseFlops) / 1e9) == "0.1377")
    }

    @Test("ResNet-8 (MNIST), ResNet-18 and ResNet-50 parameter counts")
    func otherModels() throws {
        // ResNet-8 by hand: stem 9·16 + BN 32; stage 1: 2·(16·16·9) + 2·32; stage 2:
        // 16·32·9 + 32·32·9 + 2·64; stage 3: 32·64·9 + 64·64·9 + 2·128; head 650.
        let r8 = 9 * 16 + 32 + 2 * 2304 + 64 + 4608 + 9216 + 128 + 18432 + 36864 + 256 + 650
        #expect(try ModelZoo.model(named: "resnet8-mnist")!.stats().trainableParameters == r8)
        // torchvision's published counts.
        #expect(try ModelZoo.model(named: "resnet18")!.stats().trainableParameters == 11_689_512)
        #expect(try ModelZoo.model(named: "resnet50")!.stats().trainableParameters == 25_557_032)
        // ResNet-18: 1.814 G multiply-adds per 224² image is the commonly quoted figure.
        let f = Double(try ModelZoo.model(named: "resnet18")!.stats().denseFlops) / 2e9
        #expect(abs(f - 1.814) < 0.005)
    }

    @Test("statistics scale with the batch")
    func batchScaling() throws {
        let g = try #require(try ModelZoo.model(named: "resnet8-mnist"))
        let one = g.stats(batch: 1), eight = g.stats(batch: 8)
        #expect(eight.denseFlops == 8 * one.denseFlops)
        #expect(eight.activationBytes == 8 * one.activationBytes)
        #expect(eight.trainableParameters == one.trainableParameters)
    }

    @Test("the builder reports an error at the node that makes it")
    func builderErrors() throws {
        let b = GraphBuilder(name: "bad")
        let x = b.input("x", TensorType(.f32, [Dim(symbol: "N"), 3, 8, 8]))
        let w = b.parameter("w", [4, 5, 3, 3], .zeros)
        #expect(throws: GraphError.node(name: "conv", op: "Conv", message: "X has 3 channels but W [4, 5, 3, 3] with group 1 expects 5", location: nil)) {
            _ = try b.op("Conv", name: "conv", [x, w])
        }
    }

    @Test("the JSON form holds the graph and its statistics")
    func json() throws {
        let g = try #require(try ModelZoo.model(named: "resnet8-mnist"))
        let text = g.json(stats: g.stats()).render()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["name"] as? String == "resnet8_mnist")
        let nodes = try #require(object["nodes"] as? [[String: Any]])
        #expect(nodes.count == g.nodes.count)
        let stats = try #require(object["stats"] as? [String: Any])
        #expect(stats["trainable_parameters"] as? Int == g.stats().trainableParameters)
        let inputs = try #require(object["inputs"] as? [[String: Any]])
        #expect((inputs[0]["shape"] as? [Any])?.first as? String == "N")
    }

    @Test("the dot form has a node per op and an edge per use")
    func dot() throws {
        let g = try #require(try ModelZoo.model(named: "resnet8-mnist"))
        let d = g.dot()
        #expect(d.hasPrefix("digraph \"resnet8_mnist\" {"))
        #expect(d.components(separatedBy: "shape=box").count - 1 == g.nodes.count)
        let uses = g.nodes.reduce(0) { $0 + $1.inputs.filter { name in g.parameter(named: name) == nil }.count } + g.outputs.count
        #expect(d.components(separatedBy: " -> ").count - 1 == uses)
    }
}
