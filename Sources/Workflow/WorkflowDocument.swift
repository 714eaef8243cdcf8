import Foundation
import Yams

/// An input as written in the file, before it is checked against the node type.
public enum RawInput: Sendable, Equatable {
    /// A scalar literal: its text and what YAML resolved it to.
    case literal(LiteralValue)
    /// `$node.output`, `$node`, or ComfyUI's `[node, index]`.
    case link(node: String, output: LinkOutput)

    public enum LinkOutput: Sendable, Equatable {
        case name(String)
        case index(Int)
        case only
    }
}

/// A YAML scalar with its resolved kind.
public struct LiteralValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case int, float, bool, string, null }
    public var text: String
    public var kind: Kind
    public var int: Int?
    public var double: Double?
    public var bool: Bool?
    public init(text: String, kind: Kind, int: Int? = nil, double: Double? = nil, bool: Bool? = nil) {
        self.text = text
        self.kind = kind
        self.int = int
        self.double = double ?? int.map(Double.init)
        self.bool = bool
    }
}

public struct DocumentInput: Sendable {
    public var name: String
    public var value: RawInput
    public var location: SourceLocation
}

public struct DocumentNode: Sendable {
    public var id: String
    public var type: String
    public var location: SourceLocation
    public var typeLocation: SourceLocation
    public var inputs: [DocumentInput]
}

/// A workflow file parsed into nodes and raw inputs, with the position of everything in it.
public struct WorkflowDocument: Sendable {
    public var path: String
    public var source: String
    public var nodes: [DocumentNode]

    /// Parses YAML text. Structural problems (not a mapping, duplicate ids, ...) are all collected
    /// and thrown together as a `ValidationFailure`.
    public static func parse(yaml: String, path: String) throws -> WorkflowDocument {
        var diags: [Diagnostic] = []
        func loc(_ m: Mark?) -> SourceLocation { SourceLocation(file: path, line: m?.line ?? 1, column: m?.column ?? 1) }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let e as YamlError {
            throw ValidationFailure([yamlDiagnostic(e, path: path)])
        } catch {
            throw ValidationFailure([Diagnostic(loc(nil), "invalid YAML: \(error)")])
        }
        guard let root, case .mapping(let top) = root else {
            throw ValidationFailure([Diagnostic(loc(root?.mark), "a workflow must be a mapping with a 'nodes' key")])
        }
        var nodesNode: Node?
        // ComfyUI "API format" JSON: the top level maps node ids straight to {class_type, inputs}.
        let isAPIFormat = !top.isEmpty && top.allSatisfy { _, v in
            if case .mapping(let m) = v { return m.contains { $0.key.string == "class_type" } }
            return false
        }
        if isAPIFormat { nodesNode = root }
        for (k, v) in top where !isAPIFormat {
            guard let key = k.string else { continue }
            switch key {
            case "nodes": nodesNode = v
            case "version", "description", "name", "title", "metadata": break
            default: diags.append(Diagnostic(loc(k.mark), "unknown top-level key '\(key)' (expected 'nodes')"))
            }
        }
        guard let nodesNode else {
            diags.append(Diagnostic(loc(root.mark), "missing 'nodes' mapping"))
            throw ValidationFailure(diags)
        }
        guard case .mapping(let nodeMap) = nodesNode else {
            diags.append(Diagnostic(loc(nodesNode.mark), "'nodes' must be a mapping of node id to node"))
            throw ValidationFailure(diags)
        }
        var nodes: [DocumentNode] = []
        var seen: [String: SourceLocation] = [:]
        for (k, v) in nodeMap {
            guard case .scalar(let idScalar) = k else {
                diags.append(Diagnostic(loc(k.mark), "a node id must be a plain name"))
                continue
            }
            let id = idScalar.string
            let idLoc = loc(k.mark)
            if let first = seen[id] {
                diags.append(Diagnostic(idLoc, node: id, "duplicate node id (first defined at line \(first.line))"))
                continue
            }
            seen[id] = idLoc
            if !isValidID(id) {
                diags.append(Diagnostic(idLoc, node: id, "a node id may contain only letters, digits, '_' and '-'"))
            }
            guard case .mapping(let body) = v else {
                diags.append(Diagnostic(loc(v.mark), node: id, "a node must be a mapping with 'type' and 'inputs'"))
                continue
            }
            var type: String?
            var typeLoc = idLoc
            var inputs: [DocumentInput] = []
            for (bk, bv) in body {
                let bkey = bk.string ?? ""
                switch bkey {
                case "type", "class_type":
                    typeLoc = loc(bv.mark)
                    if case .scalar(let s) = bv, !s.string.isEmpty { type = s.string } else {
                        diags.append(Diagnostic(typeLoc, node: id, "'type' must be a node type name"))
                    }
                case "inputs":
                    if case .scalar(let s) = bv, s.string.isEmpty || s.string == "~" || s.string == "null" { break }
                    guard case .mapping(let im) = bv else {
                        diags.append(Diagnostic(loc(bv.mark), node: id, "'inputs' must be a mapping of input name to value"))
                        continue
                    }
                    var seenInputs = Set<String>()
                    for (ik, iv) in im {
                        let iname = ik.string ?? ""
                        let iloc = loc(ik.mark)
                        if !seenInputs.insert(iname).inserted {
                            diags.append(Diagnostic(iloc, node: id, input: iname, "given twice"))
                            continue
                        }
                        switch rawInput(iv) {
                        case .success(let raw):
                            inputs.append(DocumentInput(name: iname, value: raw, location: loc(iv.mark ?? ik.mark)))
                        case .failure(let msg):
                            diags.append(Diagnostic(loc(iv.mark), node: id, input: iname, msg))
                        }
                    }
                case "title", "_meta", "comment", "is_changed": break
                default:
                    diags.append(Diagnostic(loc(bk.mark), node: id, "unknown key '\(bkey)' (a node has 'type' and 'inputs')"))
                }
            }
            guard let type else {
                if !diags.contains(where: { $0.nodeID == id && $0.message.hasPrefix("'type'") }) {
                    diags.append(Diagnostic(idLoc, node: id, "missing 'type'"))
                }
                continue
            }
            nodes.append(DocumentNode(id: id, type: type, location: idLoc, typeLocation: typeLoc, inputs: inputs))
        }
        if !diags.isEmpty { throw ValidationFailure(diags) }
        return WorkflowDocument(path: path, source: yaml, nodes: nodes)
    }

    public static func load(path: String) throws -> WorkflowDocument {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ValidationFailure([Diagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read the workflow file")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationFailure([Diagnostic(SourceLocation(file: path, line: 1, column: 1), "the workflow file is not UTF-8 text")])
        }
        return try parse(yaml: text, path: path)
    }

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" }
    }

    enum RawResult { case success(RawInput), failure(String) }

    static func rawInput(_ node: Node) -> RawResult {
        switch node {
        case .scalar(let s):
            return .success(parseScalar(s))
        case .sequence(let seq):
            // ComfyUI API format link: [node_id, output_index]
            if seq.count == 2, case .scalar(let a) = seq[0], let idx = seq[1].int, idx >= 0 {
                return .success(.link(node: a.string, output: .index(idx)))
            }
            return .failure("a list is not a valid input value (a link is written $node.output or [node, index])")
        case .mapping:
            return .failure("a mapping is not a valid input value")
        case .alias:
            return .failure("YAML aliases are not supported in inputs")
        }
    }

    static func parseScalar(_ s: Node.Scalar) -> RawInput {
        let text = s.string
        if s.style == .plain || s.style == .any {
            if let link = parseLink(text) { return link }
            if text.hasPrefix("$$") { return .literal(LiteralValue(text: String(text.dropFirst()), kind: .string)) }
            let node = Node.scalar(s)
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .int:
                if let v = node.int { return .literal(LiteralValue(text: text, kind: .int, int: v)) }
                if let v = node.float { return .literal(LiteralValue(text: text, kind: .float, double: v)) }
            case .float: if let v = node.float { return .literal(LiteralValue(text: text, kind: .float, double: v)) }
            case .bool: if let v = node.bool { return .literal(LiteralValue(text: text, kind: .bool, bool: v)) }
            case .null: return .literal(LiteralValue(text: text, kind: .null))
            default: break
            }
            return .literal(LiteralValue(text: text, kind: .string))
        }
        // Quoted: always a string; `$` links and the `$$` escape work the same way.
        if let link = parseLink(text) { return link }
        if text.hasPrefix("$$") { return .literal(LiteralValue(text: String(text.dropFirst()), kind: .string)) }
        return .literal(LiteralValue(text: text, kind: .string))
    }

    /// `$id.output` or `$id`; `$$...` is an escaped literal.
    static func parseLink(_ text: String) -> RawInput? {
        guard text.hasPrefix("$"), !text.hasPrefix("$$") else { return nil }
        let body = text.dropFirst()
        if let dot = body.firstIndex(of: ".") {
            return .link(node: String(body[..<dot]), output: .name(String(body[body.index(after: dot)...])))
        }
        return .link(node: String(body), output: .only)
    }

    static func yamlDiagnostic(_ e: YamlError, path: String) -> Diagnostic {
        func d(_ m: Mark?, _ msg: String) -> Diagnostic {
            Diagnostic(SourceLocation(file: path, line: m?.line ?? 1, column: m?.column ?? 1), msg)
        }
        switch e {
        case .scanner(let ctx, let problem, let mark, _), .parser(let ctx, let problem, let mark, _),
             .composer(let ctx, let problem, let mark, _):
            var msg = "invalid YAML: \(problem)"
            if let ctx { msg += " (\(ctx.text) at line \(ctx.mark.line))" }
            return d(mark, msg)
        case .duplicatedKeysInMapping(let dups, let ctx):
            let name = dups.first ?? "?"
            return d(ctx.mark, "duplicate key '\(name)'" + (dups.count > 1 ? " (\(dups.count) times)" : ""))
        case .reader(let problem, _, _, _):
            return d(nil, "invalid YAML: \(problem)")
        default:
            return d(nil, "invalid YAML: \(e)")
        }
    }

    // MARK: --set overrides

    /// Applies `id.input=value` (value parsed as a YAML scalar: `7`, `0.5`, `true`, `text`, `$node.out`).
    public mutating func applyOverride(_ assignment: String) throws {
        let here = SourceLocation(file: "--set", line: 0, column: 0)
        guard let eq = assignment.firstIndex(of: "=") else {
            throw ValidationFailure([Diagnostic(here, "'\(assignment)': expected id.input=value")])
        }
        let lhs = assignment[..<eq]
        let value = String(assignment[assignment.index(after: eq)...])
        guard let dot = lhs.firstIndex(of: ".") else {
            throw ValidationFailure([Diagnostic(here, "'\(assignment)': expected id.input=value")])
        }
        let id = String(lhs[..<dot]), input = String(lhs[lhs.index(after: dot)...])
        guard let ni = nodes.firstIndex(where: { $0.id == id }) else {
            throw ValidationFailure([Diagnostic(here, node: id, "no such node in \(path)")])
        }
        var raw: RawInput
        if let link = Self.parseLink(value) {
            raw = link
        } else if value.hasPrefix("$$") {
            raw = .literal(LiteralValue(text: String(value.dropFirst()), kind: .string))
        } else if let n = try? Yams.compose(yaml: value), case .scalar(let s) = n, !value.isEmpty {
            raw = Self.parseScalar(s)
        } else {
            raw = .literal(LiteralValue(text: value, kind: .string))
        }
        let setLoc = SourceLocation(file: "--set \(lhs)", line: 0, column: 0)
        if let ii = nodes[ni].inputs.firstIndex(where: { $0.name == input }) {
            nodes[ni].inputs[ii].value = raw
            nodes[ni].inputs[ii].location = setLoc
        } else {
            nodes[ni].inputs.append(DocumentInput(name: input, value: raw, location: setLoc))
        }
    }
}
