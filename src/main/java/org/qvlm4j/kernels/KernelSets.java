package org.qvlm4j.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.invoke.MethodHandles;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernel sets by vector width.
 *
 * <p>The preferred width is the normally loaded {@link VectorKernels}. Any other width is a hidden
 * class defined from the same class file with the species as class data, so its species is a
 * {@code static final} constant to the JIT exactly like the preferred one (passing the species as
 * an argument would keep every vector boxed on the heap). Widths wider than the hardware's run in
 * the Vector API's slow Java fallback; they exist for tests.
 */
public final class KernelSets {
    private static final KernelSet PREFERRED = new VectorKernels();
    private static final Map<VectorSpecies<Float>, KernelSet> BY_SPECIES = new ConcurrentHashMap<>();

    private KernelSets() {
    }

    /** The production set: the machine's preferred float species. */
    public static KernelSet preferred() {
        return PREFERRED;
    }

    /** The set for a float species of at least 128 bits. */
    public static KernelSet forSpecies(VectorSpecies<Float> species) {
        if (species.elementType() != float.class || species.vectorBitSize() < 128) {
            throw new IllegalArgumentException("kernel species must be float with >= 128 bits, got " + species);
        }
        if (species.equals(FloatVector.SPECIES_PREFERRED)) {
            return PREFERRED;
        }
        return BY_SPECIES.computeIfAbsent(species, KernelSets::define);
    }

    private static KernelSet define(VectorSpecies<Float> species) {
        byte[] bytes;
        String file = VectorKernels.class.getSimpleName() + ".class";
        try (InputStream in = VectorKernels.class.getResourceAsStream(file)) {
            if (in == null) {
                throw new IllegalStateException("class file " + file + " not found next to " + VectorKernels.class);
            }
            bytes = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file, e);
        }
        try {
            MethodHandles.Lookup hidden = MethodHandles.lookup()
                    .defineHiddenClassWithClassData(bytes, species, true);
            return (KernelSet) hidden.findConstructor(hidden.lookupClass(),
                    java.lang.invoke.MethodType.methodType(void.class)).invoke();
        } catch (Throwable e) {
            throw new IllegalStateException("cannot define kernels for " + species, e);
        }
    }
}
