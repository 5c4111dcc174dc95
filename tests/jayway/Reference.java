import com.jayway.jsonpath.*;
import java.io.*;
import java.util.*;

/**
 * Jayway JsonPath, the library SailPoint evaluates subscription filters with, as a reference:
 * reads "filter<TAB>input" lines on stdin and prints "match", "nomatch" or "error:<why>" for
 * each (a filter matches when it selects at least one node, as Triggerline's do).
 */
public class Reference {
    public static void main(String[] a) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        String line;
        Configuration conf = Configuration.defaultConfiguration();
        while ((line = r.readLine()) != null) {
            int tab = line.indexOf('\t');
            String filter = line.substring(0, tab), input = line.substring(tab + 1);
            String verdict;
            try {
                Object doc = conf.jsonProvider().parse(input);
                Object got = JsonPath.compile(filter).read(doc, Configuration.defaultConfiguration());
                boolean selected;
                if (got == null) selected = false;
                else if (got instanceof List) selected = !((List<?>) got).isEmpty();
                else selected = true;
                verdict = selected ? "match" : "nomatch";
            } catch (PathNotFoundException e) {
                verdict = "nomatch";
            } catch (Exception e) {
                verdict = "error:" + e.getClass().getSimpleName();
            }
            System.out.println(verdict + "\t" + filter);
        }
    }
}
