package org.qvlm4j.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Quantized kernel sets by vector width, with the mechanism of {@link KernelSets}: the preferred
 * width is the normally loaded {@link QuantVectorKernels}, any other width a hidden copy of the
 * same class file whose class data is the species, so the species is a JIT constant in every copy.
 */
public final class QuantKernelSets {
    private static final QuantKernelSet PREFERRED = new QuantVectorKernels();
    private static final Map<VectorSpecies<Float>, QuantKernelSet> BY_SPECIES = new ConcurrentHashMap<>();

    private QuantKernelSets() {
    }

    /** The production set: the machine's preferred float species. */
    public static QuantKernelSet preferred() {
        return PREFERRED;
    }

    /** The set for a float species of at least 128 bits. */
    public static QuantKernelSet forSpecies(VectorSpecies<Float> species) {
        if (species.elementType() != float.class || species.vectorBitSize() < 128) {
            throw new IllegalArgumentException("kernel species must be float with >= 128 bits, got " + species);
        }
        if (species.equals(FloatVector.SPECIES_PREFERRED)) {
            return PREFERRED;
        }
        return BY_SPECIES.computeIfAbsent(species, QuantKernelSets::define);
    }

    private static QuantKernelSet define(VectorSpecies<Float> species) {
        byte[] bytes;
        String file = QuantVectorKernels.class.getSimpleName() + ".class";
        try (InputStream in = QuantVectorKernels.class.getResourceAsStream(file)) {
            if (in == null) {
                throw new IllegalStateException("class file " + file + " not found next to " + QuantVectorKernels.class);
            }
            bytes = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file, e);
        }
        try {
            MethodHandles.Lookup hidden = MethodHandles.lookup().defineHiddenClassWithClassData(bytes, species, true);
            return (QuantKernelSet) hidden.findConstructor(hidden.lookupClass(), MethodType.methodType(void.class)).invoke();
        } catch (Throwable e) {
            throw new IllegalStateException("cannot define quantized kernels for " + species, e);
        }
    }
}
