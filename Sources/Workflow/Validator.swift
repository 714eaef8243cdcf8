import Foundation

/// Checks a whole workflow against the registry before anything runs, reporting every problem at once.
public enum Validator {
    public static func validate(_ doc: WorkflowDocument, registry: NodeRegistry, files: FileSearch) throws -> Graph {
        var diags: [Diagnostic] = []
        let docNodes = Dictionary(doc.nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var nodes: [String: GraphNode] = [:]

        for dn in doc.nodes {
            guard let def = registry.definition(named: dn.type) else {
                var msg = "unknown node type '\(dn.type)'"
                if let s = registry.suggestion(for: dn.type) { msg += " (did you mean '\(s)'?)" }
                diags.append(Diagnostic(dn.typeLocation, node: dn.id, msg))
                continue
            }
            var bound: [String: BoundInput] = [:]
            var resolvedFiles: [String: URL] = [:]
            for input in dn.inputs {
                func fail(_ m: String) { diags.append(Diagnostic(input.location, node: dn.id, input: input.name, m)) }
                guard let spec = def.input(named: input.name) else {
                    let names = def.inputs.map(\.name).joined(separator: ", ")
                    fail("unknown input for \(def.name) (its inputs: \(names.isEmpty ? "none" : names))")
                    continue
                }
                switch input.value {
                case .literal(let lit):
                    if lit.kind == .null {
                        if spec.isRequired { fail("is null; a value is required") }
                        continue
                    }
                    switch literalValue(lit, spec: spec) {
                    case .failure(let m): fail(m)
                    case .success(let v):
                        bound[spec.name] = .literal(v)
                        if let role = spec.file, case .string(let name) = v {
                            switch files.resolve(name, role: role) {
                            case .success(let url): resolvedFiles[spec.name] = url
                            case .failure(let tried):
                                let shown = tried.prefix(4).joined(separator: ", ") + (tried.count > 4 ? ", ..." : "")
                                fail("file '\(name)' not found (looked in: \(shown))")
                            }
                        }
                    }
                case .link(let target, let out):
                    if target == dn.id { fail("links to its own node"); continue }
                    guard let tn = docNodes[target] else {
                        fail("links to unknown node '\(target)'")
                        continue
                    }
                    guard let tdef = registry.definition(named: tn.type) else { continue } // reported there
                    let index: Int
                    switch out {
                    case .name(let name):
                        guard let i = tdef.outputIndex(named: name) else {
                            let outs = tdef.outputs.map(\.name).joined(separator: ", ")
                            fail("node '\(target)' (\(tdef.name)) has no output '\(name)' (its outputs: \(outs.isEmpty ? "none" : outs))")
                            continue
                        }
                        index = i
                    case .only:
                        guard tdef.outputs.count == 1 else {
                            let outs = tdef.outputs.map(\.name).joined(separator: ", ")
                            fail(tdef.outputs.isEmpty ? "node '\(target)' (\(tdef.name)) has no outputs"
                                 : "node '\(target)' has several outputs (\(outs)): write $\(target).<output>")
                            continue
                        }
                        index = 0
                    case .index(let i):
                        guard i < tdef.outputs.count else {
                            fail("node '\(target)' (\(tdef.name)) has no output number \(i)")
                            continue
                        }
                        index = i
                    }
                    let outType = tdef.outputs[index].type
                    let compatible = outType == spec.type || (spec.type == .float && outType == .int)
                    if !compatible {
                        fail("type mismatch: expects \(spec.type), but $\(target).\(tdef.outputs[index].name) is \(outType)")
                        continue
                    }
                    if spec.file != nil {
                        fail("names a file and must be a literal, not a link")
                        continue
                    }
                    bound[spec.name] = .link(node: target, output: index)
                }
            }
            for spec in def.inputs where bound[spec.name] == nil {
                if let d = spec.defaultValue {
                    if !dn.inputs.contains(where: { $0.name == spec.name }) { bound[spec.name] = .literal(d) }
                } else if spec.isRequired && !dn.inputs.contains(where: { $0.name == spec.name }) {
                    diags.append(Diagnostic(dn.location, node: dn.id, input: spec.name, "missing required input (\(spec.type))"))
                }
            }
            nodes[dn.id] = GraphNode(id: dn.id, definition: def, inputs: bound, files: resolvedFiles, location: dn.location)
        }

        // Cycles, over every link whose ends exist.
        diags += findCycles(doc: doc)

        let outputs = doc.nodes.filter { nodes[$0.id]?.definition.isOutput == true }.map(\.id)
        if outputs.isEmpty && !doc.nodes.isEmpty && diags.isEmpty {
            diags.append(Diagnostic(SourceLocation(file: doc.path, line: 1, column: 1),
                                    "the workflow has no output node (SaveImage, SaveLatent, ...): nothing to run"))
        } else if doc.nodes.isEmpty {
            diags.append(Diagnostic(SourceLocation(file: doc.path, line: 1, column: 1), "the workflow has no nodes"))
        }
        if !diags.isEmpty { throw ValidationFailure(diags) }

        // Prune to what the outputs need, then order topologically (document order among equals).
        var needed = Set<String>()
        var stack = outputs
        while let id = stack.popLast() {
            guard needed.insert(id).inserted, let n = nodes[id] else { continue }
            stack.append(contentsOf: n.upstream)
        }
        var order: [String] = []
        var placed = Set<String>()
        let docOrder = doc.nodes.map(\.id).filter { needed.contains($0) }
        while order.count < docOrder.count {
            var progressed = false
            for id in docOrder where !placed.contains(id) {
                if nodes[id]!.upstream.allSatisfy({ placed.contains($0) }) {
                    order.append(id)
                    placed.insert(id)
                    progressed = true
                }
            }
            if !progressed { break } // unreachable: cycles were rejected above
        }
        let source = WorkflowSource(path: doc.path, yaml: doc.source, apiJSON: apiJSON(doc: doc, nodes: nodes))
        return Graph(nodes: nodes, order: order, outputs: outputs, source: source)
    }

    enum LiteralResult { case success(Value), failure(String) }

    static func literalValue(_ lit: LiteralValue, spec: InputSpec) -> LiteralResult {
        let v: Value
        switch spec.type {
        case .int:
            if let i = lit.int { v = .int(i) }
            else if let d = lit.double, d == d.rounded(), abs(d) < 9.2e18 { v = .int(Int(d)) }
            else { return .failure("expects an INT, got '\(lit.text)'") }
        case .float:
            guard let d = lit.double, d.isFinite else { return .failure("expects a FLOAT, got '\(lit.text)'") }
            v = .float(d)
        case .boolean:
            guard let b = lit.bool else { return .failure("expects true or false, got '\(lit.text)'") }
            v = .bool(b)
        case .string:
            if let choices = spec.choices, !choices.contains(lit.text) {
                return .failure("'\(lit.text)' is not one of: \(choices.joined(separator: ", "))")
            }
            v = .string(lit.text)
        default:
            return .failure("expects a link to an output of type \(spec.type) ($node.output), got the literal '\(lit.text)'")
        }
        let num: Double? = { if case .int(let i) = v { return Double(i) }; if case .float(let d) = v { return d }; return nil }()
        if let num {
            if let lo = spec.min, num < lo { return .failure("\(lit.text) is below the minimum \(fmt(lo))") }
            if let hi = spec.max, num > hi { return .failure("\(lit.text) is above the maximum \(fmt(hi))") }
            if let m = spec.multipleOf, case .int(let i) = v, i % m != 0 { return .failure("\(lit.text) is not a multiple of \(m)") }
        }
        return .success(v)
    }

    static func fmt(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e18 ? String(Int64(d)) : String(d)
    }

    static func findCycles(doc: WorkflowDocument) -> [Diagnostic] {
        let byID = Dictionary(doc.nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        func deps(_ n: DocumentNode) -> [(String, SourceLocation)] {
            n.inputs.compactMap { inp in
                if case .link(let t, _) = inp.value, t != n.id, byID[t] != nil { return (t, inp.location) }
                return nil
            }
        }
        var state: [String: Int] = [:] // 1 visiting, 2 done
        var path: [String] = []
        var diags: [Diagnostic] = []
        var reported = Set<String>()
        func visit(_ id: String) {
            state[id] = 1
            path.append(id)
            for (t, loc) in deps(byID[id]!) {
                if state[t] == 1 {
                    let start = path.lastIndex(of: t)!
                    let cycle = Array(path[start...])
                    let key = cycle.sorted().joined(separator: ",")
                    if reported.insert(key).inserted {
                        // Printed in data-flow order: each node feeds the next.
                        let flow = ([t] + cycle.reversed()).joined(separator: " -> ")
                        diags.append(Diagnostic(loc, node: id, "cycle: \(flow)"))
                    }
                } else if state[t] == nil {
                    visit(t)
                }
            }
            path.removeLast()
            state[id] = 2
        }
        for n in doc.nodes where state[n.id] == nil { visit(n.id) }
        return diags
    }

    /// ComfyUI "API format": `{id: {class_type, inputs: {name: literal | [id, index]}}}`.
    static func apiJSON(doc: WorkflowDocument, nodes: [String: GraphNode]) -> String {
        var obj: [String: Any] = [:]
        for dn in doc.nodes {
            guard let gn = nodes[dn.id] else { continue }
            var inputs: [String: Any] = [:]
            for (name, b) in gn.inputs {
                switch b {
                case .literal(let v): inputs[name] = v.jsonObject
                case .link(let n, let i): inputs[name] = [n, i] as [Any]
                }
            }
            obj[dn.id] = ["class_type": gn.definition.comfyName, "inputs": inputs, "_meta": ["title": dn.id]] as [String: Any]
        }
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
