import Foundation
import Testing
@testable import Workflow

@Suite struct ValidationTests {
    @Test func everyErrorKindReportedAtOnceWithPositions() {
        let yaml = """
        nodes:
          a:
            type: Const
            inputs: {value: 500}
          b:
            type: Addd
          c:
            type: Add
            inputs:
              a: $a.value
              bogus: 1
          d:
            type: Add
            inputs:
              a: $nowhere.value
              b: $a.nothing
          e:
            type: Scale
            inputs:
              x: $a.value
              mode: ceil
              factor: abc
          f:
            type: Sink
            inputs:
              value: $e.y
              blob: 3
        """
        let d = diagnostics(yaml)
        func has(_ line: Int, _ node: String, _ input: String?, _ fragment: String) -> Bool {
            d.contains { $0.location.line == line && $0.nodeID == node && $0.input == input && $0.message.contains(fragment) }
        }
        #expect(has(4, "a", "value", "above the maximum 100"))
        #expect(has(6, "b", nil, "unknown node type 'Addd'"))
        #expect(has(6, "b", nil, "did you mean 'Add'"))
        #expect(has(11, "c", "bogus", "unknown input for Add"))
        #expect(has(7, "c", "b", "missing required input"))
        #expect(has(15, "d", "a", "unknown node 'nowhere'"))
        #expect(has(16, "d", "b", "has no output 'nothing'"))
        #expect(has(21, "e", "mode", "'ceil' is not one of: floor, round"))
        #expect(has(22, "e", "factor", "expects a FLOAT"))
        #expect(has(26, "f", "value", "type mismatch: expects INT, but $e.y is FLOAT"))
        #expect(has(27, "f", "blob", "expects a link to an output of type BLOB"))
        #expect(d.count == 10, "\(d)")
        // The printed form is file:line:column: node 'id' input 'x': message
        #expect(d.map(\.description).contains("wf.yaml:4:21: node 'a' input 'value': 500 is above the maximum 100"))
    }

    @Test func cycleReportsItsPath() {
        let yaml = """
        nodes:
          x:
            type: Add
            inputs: {a: $z.sum, b: $k.value}
          y:
            type: Add
            inputs: {a: $x.sum, b: $k.value}
          z:
            type: Add
            inputs: {a: $y.sum, b: $k.value}
          k: {type: Const}
          out: {type: Sink, inputs: {value: $z.sum}}
        """
        let d = diagnostics(yaml)
        #expect(d.count == 1)
        let msg = d.first?.message ?? ""
        #expect(msg.hasPrefix("cycle: "))
        // Every node of the cycle is on the path, which starts and ends on the same node.
        let parts = msg.dropFirst("cycle: ".count).components(separatedBy: " -> ")
        #expect(parts.count == 4 && parts.first == parts.last && Set(parts) == ["x", "y", "z"])
    }

    @Test func selfLink() {
        let d = diagnostics("nodes:\n  a: {type: Add, inputs: {a: $a.sum, b: 1}}\n  s: {type: Sink, inputs: {value: $a.sum}}\n")
        #expect(d.contains { $0.nodeID == "a" && $0.input == "a" && $0.message.contains("links to its own node") })
    }

    @Test(arguments: [
        ("nodes: [a, b]", 1, "'nodes' must be a mapping"),
        ("- just\n- a list\n", 1, "must be a mapping with a 'nodes' key"),
        ("nodes:\n  a: {type: Const\n", 3, "invalid YAML"),
        ("nodes:\n  a: {type: Const}\n  a: {type: Const}\n", 2, "duplicate"),
        ("nodes:\n  a: 7\n", 2, "a node must be a mapping"),
        ("nodes:\n  a: {inputs: {}}\n", 2, "missing 'type'"),
        ("nodes:\n  a: {type: Const}\n", 1, "no output node"),
        ("nodez: {}\n", 1, "unknown top-level key"),
    ])
    func malformedFiles(yaml: String, line: Int, fragment: String) {
        let d = diagnostics(yaml)
        #expect(d.contains { $0.message.contains(fragment) }, "\(d)")
        #expect(d.first?.location.line == line, "\(d)")
    }

    @Test func linksEscapesAndAliases() throws {
        let yaml = """
        nodes:
          a: {type: ConstantInt, inputs: {value: 3}}
          s: {type: Scale, inputs: {x: $a, factor: 2}}
          o: {type: Sink, inputs: {real: $s.y, label: $$dollar}}
          p: {type: Sink, inputs: {value: [a, 0]}}
        """
        let g = try graph(yaml, registry: makeRegistry())
        guard case .literal(.string(let label)) = g.nodes["o"]!.inputs["label"] else { Issue.record("label"); return }
        #expect(label == "$dollar")
        guard case .link("a", 0) = g.nodes["s"]!.inputs["x"] else { Issue.record("link"); return }
        #expect(g.nodes["a"]!.definition.name == "Const")
        #expect(g.source.apiJSON.contains("\"class_type\":\"ConstantInt\""))
    }

    @Test func setOverridesAndPruning() throws {
        let yaml = """
        nodes:
          a: {type: Const, inputs: {value: 3}}
          unused: {type: Const, inputs: {value: 9}}
          o: {type: Sink, inputs: {value: $a.value}}
        """
        let g = try graph(yaml, registry: makeRegistry(), sets: ["a.value=42"])
        guard case .literal(.int(42)) = g.nodes["a"]!.inputs["value"] else { Issue.record("override"); return }
        #expect(g.order == ["a", "o"])
        #expect(throws: ValidationFailure.self) { try graph(yaml, registry: makeRegistry(), sets: ["zz.value=1"]) }
        #expect(throws: ValidationFailure.self) { try graph(yaml, registry: makeRegistry(), sets: ["a.value=1000"]) }
    }

    @Test func missingFileIsReportedBeforeRunning() {
        let d = diagnostics("nodes:\n  f: {type: FileSize, inputs: {path: nope.bin}}\n  o: {type: Sink, inputs: {value: $f.size}}\n")
        #expect(d.count == 1 && d[0].input == "path" && d[0].message.contains("file 'nope.bin' not found"))
    }
}
