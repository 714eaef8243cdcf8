import Workflow

/// Every built-in node type and the payload codecs the disk cache needs.
public func builtinRegistry() -> NodeRegistry {
    let r = NodeRegistry()
    for def in builtinDefinitions { r.register(def) }
    r.registerCodec(ImageValue.self)
    r.registerCodec(MaskValue.self)
    return r
}

let builtinDefinitions: [NodeDefinition] = [
    LoadImageNode.definition,
    SaveImageNode.definition,
]
