import Foundation

extension WorkflowDocument {
    /// The workflow as sdflow YAML (used by `sdflow convert` for ComfyUI API JSON).
    public func yamlText() -> String {
        var out = "nodes:\n"
        for n in nodes {
            out += "  \(n.id):\n    type: \(n.type)\n"
            if n.inputs.isEmpty { continue }
            out += "    inputs:\n"
            for i in n.inputs {
                out += "      \(i.name): \(Self.yamlValue(i.value))\n"
            }
        }
        return out
    }

    static func yamlValue(_ v: RawInput) -> String {
        switch v {
        case .link(let node, let output):
            switch output {
            case .name(let n): return "$\(node).\(n)"
            case .only: return "$\(node)"
            case .index(let i): return "[\(quoteIfNeeded(node)), \(i)]"
            }
        case .literal(let lit):
            switch lit.kind {
            case .int, .float, .bool: return lit.text
            case .null: return "null"
            case .string:
                let t = lit.text.hasPrefix("$") ? "$" + lit.text : lit.text
                return quoteIfNeeded(t, force: true)
            }
        }
    }

    static func quoteIfNeeded(_ s: String, force: Bool = false) -> String {
        let plainSafe = !s.isEmpty && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "_-./".unicodeScalars.contains($0) }
            && Double(s) == nil && !["true", "false", "yes", "no", "null", "on", "off", "~"].contains(s.lowercased())
        if plainSafe { return s }
        var e = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": e += "\\\""
            case "\\": e += "\\\\"
            case "\n": e += "\\n"
            case "\t": e += "\\t"
            default: e.unicodeScalars.append(ch)
            }
        }
        return e + "\""
    }

    /// API-format `[node, index]` links rewritten to `$node.output` names using the node definitions.
    public func namingLinks(with registry: NodeRegistry) -> WorkflowDocument {
        var doc = self
        let types = Dictionary(nodes.map { ($0.id, $0.type) }, uniquingKeysWith: { a, _ in a })
        for ni in doc.nodes.indices {
            for ii in doc.nodes[ni].inputs.indices {
                if case .link(let target, .index(let idx)) = doc.nodes[ni].inputs[ii].value,
                   let t = types[target], let def = registry.definition(named: t), idx < def.outputs.count {
                    doc.nodes[ni].inputs[ii].value = .link(node: target, output: .name(def.outputs[idx].name))
                }
            }
        }
        return doc
    }
}
