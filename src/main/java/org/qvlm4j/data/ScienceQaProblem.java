package org.qvlm4j.data;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * One ScienceQA problem: the fields of an entry of {@code problems.json} (lupantech/ScienceQA
 * data/scienceqa) plus its pid and the image file resolved against the dataset directory.
 *
 * <p>The category helpers follow the groupings of ScienceQA's tools/evaluate_acc.py (the table
 * LLaVA reports): subject NAT/SOC/LAN; context TXT when the hint is non-empty, IMG when there is an
 * image, NO when there is neither, so a problem with both a hint and an image counts in TXT and in
 * IMG; grade G1-6 / G7-12. The optional {@code task} field of the real data ("closed choice",
 * "yes or no", ...) is kept when present. Captions and other LLaVA-side conversions are left out.
 *
 * @param pid       problem id, the key in problems.json
 * @param image     the raw {@code image} value ("image.png") or null
 * @param imagePath that file resolved against the dataset directory, or null when {@code image} is null
 * @param answer    index into {@code choices}
 * @param hint      context text, empty when absent
 * @param task      ScienceQA's task field, null when the file has none
 */
public record ScienceQaProblem(String pid, String question, List<String> choices, int answer, String hint,
                               String image, Path imagePath, String subject, String grade, String category,
                               String topic, String skill, String lecture, String solution, String split,
                               String task) {

    /** Subject group as in the ScienceQA accuracy table. */
    public enum SubjectGroup { NAT, SOC, LAN }

    /** Context modality as in the ScienceQA accuracy table; a problem may be in TXT and IMG at once. */
    public enum Context { TXT, IMG, NO }

    /** Grade band as in the ScienceQA accuracy table. */
    public enum GradeBand { G1_6, G7_12 }

    public ScienceQaProblem {
        choices = List.copyOf(choices);
        hint = hint == null ? "" : hint;
    }

    /** The answer's text. */
    public String answerText() {
        return choices.get(answer);
    }

    /** NAT, SOC or LAN from the subject string; IllegalArgumentException for any other subject. */
    public SubjectGroup subjectGroup() {
        return switch (subject) {
            case "natural science" -> SubjectGroup.NAT;
            case "social science" -> SubjectGroup.SOC;
            case "language science" -> SubjectGroup.LAN;
            default -> throw new IllegalArgumentException("problem " + pid + ": key subject: expected natural science, "
                    + "social science or language science, got " + subject);
        };
    }

    /** True when the hint is non-empty (evaluate_acc.py's has_text). */
    public boolean hasText() {
        return !hint.isEmpty();
    }

    /** True when the problem names an image (evaluate_acc.py's has_image). */
    public boolean hasImage() {
        return image != null && !image.isEmpty();
    }

    /** The context groups this problem counts in: {TXT}, {IMG}, {TXT, IMG} or {NO}. */
    public Set<Context> contexts() {
        EnumSet<Context> s = EnumSet.noneOf(Context.class);
        if (hasText()) {
            s.add(Context.TXT);
        }
        if (hasImage()) {
            s.add(Context.IMG);
        }
        if (s.isEmpty()) {
            s.add(Context.NO);
        }
        return s;
    }

    /** The grade number 1..12 parsed from "gradeN". */
    public int gradeNumber() {
        return parseGrade(grade);
    }

    /** G1_6 for grade1..grade6, G7_12 for grade7..grade12. */
    public GradeBand gradeBand() {
        return gradeNumber() <= 6 ? GradeBand.G1_6 : GradeBand.G7_12;
    }

    /**
     * The columns of the ScienceQA accuracy table this problem counts in, e.g. [NAT, TXT, IMG, G1-6]:
     * its subject group, each of its contexts, its grade band.
     */
    public List<String> tableColumns() {
        List<String> cols = new java.util.ArrayList<>();
        cols.add(subjectGroup().name());
        contexts().forEach(c -> cols.add(c.name()));
        cols.add(gradeBand() == GradeBand.G1_6 ? "G1-6" : "G7-12");
        return cols;
    }

    static int parseGrade(String grade) {
        if (grade != null && grade.startsWith("grade")) {
            try {
                int g = Integer.parseInt(grade.substring(5));
                if (g >= 1 && g <= 12) {
                    return g;
                }
            } catch (NumberFormatException ignored) {
                // reported below with the offending value
            }
        }
        throw new IllegalArgumentException("key grade: expected grade1..grade12, got " + grade);
    }
}
