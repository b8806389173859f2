package org.qvlm4j.eval;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.image.PixelValues;
import org.qvlm4j.io.text.ImageTokens;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.Sampler;

/**
 * Answers ScienceQA problems with a LLaVA model the way LLaVA-1.5's {@code model_vqa_science.py}
 * does (prompt from {@link ScienceQaPrompt}, greedy decoding, the output decoded without special
 * tokens and stripped) and scores them with {@link AnswerParser}.
 *
 * <p>Threads: a fixed set of workers, each with its own {@link LlavaModel.Session} (KV cache and
 * scratch), reset between problems; the model's weights are shared read-only, and matrix products
 * from several threads may share the kernel pool, which accepts concurrent callers. Activation
 * taps are per model and keep state, so a model with a tap is refused for more than one thread.
 * Tokenizing, decoding and parsing run on the calling thread. Results reach the consumer in input
 * order, and every problem's computation is the same whichever thread does it, so the output is
 * identical for any thread count.
 *
 * <p>Preprocessed images are cached in memory up to a byte budget, so an evaluator reused over
 * several runs (for example several quantized variants of one model) decodes each image once.
 * Leaves out: sampling, batching several prompts in one forward pass, LLaVA's two-stage
 * "answer prompter".
 */
public final class ScienceQaEvaluator {

    /**
     * What changes the predictions.
     *
     * @param template       conversation template (LLaVA's science eval uses vicuna_v1)
     * @param maxNewTokens   generation limit per problem
     * @param padMode        image aspect handling before CLIP preprocessing
     * @param randomFallback replace a failed parse by a seeded random choice, as an older
     *                       eval_science_qa.py did (failures are still counted)
     * @param seed           seed of that fallback
     */
    public record Settings(PromptTemplate template, int maxNewTokens, PadMode padMode, boolean randomFallback, long seed) {
        public Settings {
            if (template == null || padMode == null) {
                throw new IllegalArgumentException("template and padMode must be given");
            }
            if (maxNewTokens < 1) {
                throw new IllegalArgumentException("max new tokens must be >= 1, got " + maxNewTokens);
            }
        }

        /** LLaVA-1.5's ScienceQA settings, with an answer budget of {@value #DEFAULT_MAX_NEW_TOKENS} tokens. */
        public static Settings defaults() {
            return new Settings(PromptTemplate.VICUNA_V1, DEFAULT_MAX_NEW_TOKENS, PadMode.PAD_TO_SQUARE, false, 0);
        }
    }

    /**
     * Default generation limit: room for a stepwise answer (a solution of several steps, each option
     * up to the right one judged, "The answer is X."; up to about 90 tokens on the synth benchmark);
     * generation stops at the end token, so short answers cost nothing extra.
     */
    public static final int DEFAULT_MAX_NEW_TOKENS = 128;
    /** Default memory budget of the image cache. */
    public static final long DEFAULT_CACHE_BYTES = 256L << 20;
    private static final long POLL_MS = 200;

    private final LlavaModel model;
    private final LlavaTokenizer tokenizer;
    private final ClipImageProcessor processor;
    private final Settings settings;
    private final int imageTokenId;
    private final long cacheBudget;
    private final ConcurrentHashMap<Path, float[]> pixelCache = new ConcurrentHashMap<>();
    private final AtomicLong cachedBytes = new AtomicLong();

    public ScienceQaEvaluator(LlavaModel model, LlavaTokenizer tokenizer, ClipImageProcessor processor, Settings settings) {
        this(model, tokenizer, processor, settings, DEFAULT_CACHE_BYTES);
    }

    public ScienceQaEvaluator(LlavaModel model, LlavaTokenizer tokenizer, ClipImageProcessor processor, Settings settings,
                              long cacheBytes) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.processor = processor;
        this.settings = settings;
        this.cacheBudget = cacheBytes;
        this.imageTokenId = checkCompatible(model.config(), tokenizer, processor);
    }

    /**
     * Checks that tokenizer, image processor and model fit together and returns the image token id:
     * the tokenizer's {@code <image>} id must be the config's image_token_index, every tokenizer id
     * must have an embedding row, and the processor's crop must be the vision tower's image size.
     */
    public static int checkCompatible(LlavaConfig cfg, LlavaTokenizer tok, ClipImageProcessor proc) {
        Path dir = tok.directory();
        if (!tok.hasToken(PromptTemplate.IMAGE_PLACEHOLDER)) {
            throw new IllegalArgumentException(dir.resolve(LlavaTokenizer.TOKENIZER_FILE) + ": no '"
                    + PromptTemplate.IMAGE_PLACEHOLDER + "' token; expected it with id image_token_index = "
                    + cfg.imageTokenIndex());
        }
        int id = tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER);
        if (id != cfg.imageTokenIndex()) {
            throw new IllegalArgumentException(dir.resolve(LlavaTokenizer.TOKENIZER_FILE) + ": '"
                    + PromptTemplate.IMAGE_PLACEHOLDER + "' has id " + id + " but config.json image_token_index is "
                    + cfg.imageTokenIndex() + " (model and tokenizer do not match)");
        }
        int vocab = cfg.textConfig().vocabSize();
        if (tok.vocabSize() > vocab) {
            throw new IllegalArgumentException(dir.resolve(LlavaTokenizer.TOKENIZER_FILE) + ": tokenizer has "
                    + tok.vocabSize() + " ids but config.json text_config.vocab_size is " + vocab
                    + " (model and tokenizer do not match)");
        }
        int size = cfg.visionConfig().imageSize();
        var pc = proc.config();
        if (pc.doCenterCrop() ? pc.cropHeight() != size || pc.cropWidth() != size
                : pc.resizeShortestEdge() != 0 || pc.resizeHeight() != size || pc.resizeWidth() != size) {
            throw new IllegalArgumentException(dir.resolve("preprocessor_config.json") + ": images come out "
                    + (pc.doCenterCrop() ? pc.cropHeight() + "x" + pc.cropWidth() : "unsized")
                    + " but config.json vision_config.image_size is " + size);
        }
        return id;
    }

    public Settings settings() {
        return settings;
    }

    /** The prompt ids of a problem, image placeholders expanded to the vision features. */
    public int[] promptIds(ScienceQaProblem p) {
        long[] ids = tokenizer.encode(ScienceQaPrompt.render(p, settings.template()));
        if (p.hasImage()) {
            ids = ImageTokens.expand(ids, imageTokenId, 1, model.config().imageSeqLength());
        } else if (ImageTokens.count(ids, imageTokenId) > 0) {
            throw new IllegalArgumentException("problem " + p.pid() + ": text holds '" + PromptTemplate.IMAGE_PLACEHOLDER
                    + "' but the problem has no image");
        }
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /**
     * Answers the problems on {@code threads} workers and hands each prediction to {@code sink}
     * on the calling thread, in list order, as soon as it and all before it are done.
     */
    public void evaluate(List<ScienceQaProblem> problems, int threads, Consumer<Prediction> sink) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        if (threads > 1 && model.activationTap() != null) {
            throw new IllegalArgumentException("the model has an activation tap, which is not thread-safe; "
                    + "evaluate with 1 thread, got " + threads);
        }
        int n = problems.size();
        if (n == 0) {
            return;
        }
        int[][] prompts = new int[n][];
        int longest = 0;
        for (int i = 0; i < n; i++) {
            prompts[i] = promptIds(problems.get(i));
            longest = Math.max(longest, prompts[i].length);
        }
        int capacity = longest + settings.maxNewTokens();
        int workers = Math.min(threads, n);
        AtomicInteger next = new AtomicInteger();
        AtomicReferenceArray<int[]> outputs = new AtomicReferenceArray<>(n);
        LinkedBlockingQueue<Integer> finished = new LinkedBlockingQueue<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicBoolean stop = new AtomicBoolean();
        Thread[] pool = new Thread[workers];
        for (int w = 0; w < workers; w++) {
            pool[w] = Thread.ofPlatform().daemon().name("qvlm4j-eval-" + w).unstarted(() -> {
                try {
                    LlavaModel.Session session = model.newSession(capacity);
                    int i;
                    while (!stop.get() && (i = next.getAndIncrement()) < n) {
                        session.reset();
                        outputs.set(i, generate(session, prompts[i], pixels(problems.get(i))));
                        finished.add(i);
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                    finished.add(-1);
                }
            });
            pool[w].start();
        }
        try {
            int emitted = 0;
            while (emitted < n) {
                Integer got = finished.poll(POLL_MS, TimeUnit.MILLISECONDS);
                Throwable t = failure.get();
                if (t instanceof RuntimeException re) {
                    throw re;
                } else if (t instanceof Error e) {
                    throw e;
                } else if (t != null) {
                    throw new IllegalStateException("evaluation worker failed", t);
                }
                if (got == null) {
                    continue;
                }
                int[] out;
                while (emitted < n && (out = outputs.getAndSet(emitted, null)) != null) {
                    sink.accept(score(problems.get(emitted), out));
                    emitted++;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while evaluating", e);
        } finally {
            stop.set(true);
            for (Thread t : pool) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /** Greedy decoding until an end token or the limit, as HF generate with do_sample=False. */
    private int[] generate(LlavaModel.Session session, int[] ids, float[] pixels) {
        int V = model.config().textConfig().vocabSize();
        int[] out = new int[settings.maxNewTokens()];
        float[] logits = session.prefill(ids, pixels);
        int n = 0;
        while (true) {
            int token = Sampler.argmax(logits, V);
            out[n++] = token;
            if (n == out.length || model.config().textConfig().isEos(token)) {
                break;
            }
            logits = session.decode(token);
        }
        return Arrays.copyOf(out, n);
    }

    /** The prediction for a problem from its generated ids. */
    Prediction score(ScienceQaProblem p, int[] generated) {
        long[] ids = new long[generated.length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = generated[i];
        }
        String output = tokenizer.decode(ids);
        AnswerParser.Parsed parsed = AnswerParser.parse(output.strip(), p.choices().size());
        int predicted = parsed.index();
        if (parsed.failed() && settings.randomFallback()) {
            predicted = fallbackIndex(settings.seed(), p.pid(), p.choices().size());
        }
        return new Prediction(p.pid(), ScienceQaPrompt.render(p, settings.template()), output, parsed.letter(),
                predicted, p.answer(), predicted == p.answer(), parsed.failed(), p.tableColumns(), generated.length);
    }

    /** The seeded stand-in for random.choice(range(len(choices))): a function of seed and pid only. */
    static int fallbackIndex(long seed, String pid, int numChoices) {
        return new SplittableRandom(seed ^ (0x9E3779B97F4A7C15L * pid.hashCode())).nextInt(numChoices);
    }

    /** CHW pixels of the problem's image (cached), or null without an image. */
    float[] pixels(ScienceQaProblem p) {
        if (!p.hasImage()) {
            return null;
        }
        Path file = p.imagePath();
        float[] cached = pixelCache.get(file);
        if (cached != null) {
            return cached;
        }
        PixelValues v = processor.preprocess(file);
        float[] data = v.data(); // (3, S, S)
        long bytes = 4L * data.length;
        if (cachedBytes.addAndGet(bytes) <= cacheBudget) {
            pixelCache.putIfAbsent(file, data);
        } else {
            cachedBytes.addAndGet(-bytes);
        }
        return data;
    }

    /** Images currently held by the cache. */
    public int cachedImages() {
        return pixelCache.size();
    }
}
