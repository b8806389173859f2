package org.qvlm4j.io.safetensors;

import java.util.Map;
import java.util.Set;

/** Named tensors from one safetensors file or a whole (possibly sharded) checkpoint. */
public interface TensorSource {

    /** All tensors by name, in file order. */
    Map<String, TensorEntry> tensors();

    /** What error messages call this source: the file or the checkpoint directory. */
    String describe();

    default Set<String> names() {
        return tensors().keySet();
    }

    default boolean contains(String name) {
        return tensors().containsKey(name);
    }

    /** The tensor called name; throws naming the source and the key when absent. */
    default TensorEntry get(String name) {
        TensorEntry e = tensors().get(name);
        if (e == null) {
            throw new SafeTensorsException(describe() + ": no tensor '" + name + "'");
        }
        return e;
    }
}
