package org.qvlm4j.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Entry point of the {@code qvlm4j} command. Subcommands live in this package, the only place that
 * prints to stdout. Exit codes: 0 success, 2 bad input (usage errors, invalid files or values),
 * 1 an internal failure.
 */
@Command(name = "qvlm4j",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "Post-training quantization and a pure-Java runtime for LLaVA-family vision-language models.",
        subcommands = {InspectCommand.class, LogitsCommand.class, GenerateCommand.class, BenchCommand.class, SynthCommand.class, EvalCommand.class, CalibrateCommand.class, TrainCommand.class, QuantizeCommand.class, AnalyzeCommand.class, ExperimentCommand.class, ProbeCommand.class, SmoothCommand.class})
public final class Main implements Runnable {

    /** Exit code for bad input: usage errors and invalid files or values. */
    public static final int EXIT_BAD_INPUT = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs the CLI with the given streams and returns the exit code (tests call this). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        cl.setCaseInsensitiveEnumValuesAllowed(true); // --inputs answer, --pad-mode pad_to_square
        cl.setOut(out);
        cl.setErr(err);
        cl.setExitCodeExceptionMapper(t -> t instanceof IllegalArgumentException
                || t instanceof java.io.UncheckedIOException
                || t instanceof java.nio.file.NoSuchFileException ? EXIT_BAD_INPUT : 1);
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("qvlm4j: " + ex.getMessage());
            ex.getCommandLine().usage(err);
            return EXIT_BAD_INPUT;
        });
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            int code = commandLine.getExitCodeExceptionMapper().getExitCode(ex);
            if (code == EXIT_BAD_INPUT) {
                err.println("qvlm4j " + commandLine.getCommandName() + ": " + ex.getMessage());
            } else {
                err.println("qvlm4j " + commandLine.getCommandName() + ": internal error: " + ex);
                ex.printStackTrace(err);
            }
            return code;
        });
        return cl.execute(args);
    }

    /** Version from the jar manifest, or "dev" when run from classes. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"qvlm4j " + (v == null ? "dev" : v)};
        }
    }
}
