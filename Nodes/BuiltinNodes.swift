import Workflow

/// Every built-in node type and the payload codecs the disk cache needs.
public func builtinRegistry() -> NodeRegistry {
    let r = NodeRegistry()
    for def in builtinDefinitions { r.register(def) }
    r.registerCodec(ImageValue.self)
    r.registerCodec(MaskValue.self)
    r.registerCodec(LatentValue.self)
    r.registerCodec(ConditioningValue.self)
    return r
}

let builtinDefinitions: [NodeDefinition] = [
    CheckpointLoaderNode.definition,
    DiffusersLoaderNode.definition,
    UNetLoaderNode.definition,
    LoraLoaderNode.definition,
    ModelSamplingDiscreteNode.definition,
    CLIPEncodeNode.definition,
    CLIPTextEncodeSDXLNode.definition,
    EmptyLatentImageNode.definition,
    KSamplerNode.definition,
    VAEDecodeNode.definition,
    VAEDecodeTiledNode.definition,
    VAEEncodeNode.definition,
    VAEEncodeTiledNode.definition,
    ControlNetLoaderNode.definition,
    ControlNetApplyNode.definition,
    LoadImageNode.definition,
    ImageScaleNode.definition,
    CannyNode.definition,
    SaveImageNode.definition,
    SaveLatentNode.definition,
]
