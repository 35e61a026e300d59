"""The words of the finding extractor (:mod:`meit.findings`): patterns per finding and language, negation.

A leaf module, data only. Every pattern runs on :func:`meit.findings_text.normalise`-d text: lower case,
umlauts folded (``ä``→``ae``, ``ö``→``oe``, ``ü``→``ue``, ``ß``→``ss``, ``å``→``a``), ``a-v``→``av``. Patterns of
all languages run on every report (reports mix languages: German device text with English annotator notes),
so the language only documents where a phrasing comes from.

English covers MIMIC-IV-ECG machine statements, PTB-XL's English reports and the synthetic generator;
German and Swedish cover PTB-XL's device and cardiologist phrasings. Two PTB-XL conventions shape them:

* German axis types are not English axis deviations: ``linkstyp`` (-30..+30 deg), ``indifferenztyp``,
  ``steiltyp`` are normal axes; ``ueberdrehter linkstyp`` (< -30) is left axis deviation, ``rechtstyp``
  (> +90) and ``ueberdrehter rechtstyp`` right. The Swedish device prints the same statements as
  ``vaenster el-axel`` (= linkstyp, read as normal), ``extrem vaenster el-axel`` (= ueberdrehter linkstyp)
  and ``hoeger el-axel`` (= rechtstyp): the same reports carry the same codes (PTB-XL: LAFB with
  "extrem vänster el-axel", NORM 80 with "vänster el-axel eljest normalt ekg" as with "linkstyp sonst
  normales ekg").
* Voltage criteria for hypertrophy (``voltage criteria (QRS) for LVH``, ``amplitudenkriterien für
  linkshypertrophie``, ``amplitudkriterier för vänster kammarhypertrofi``) are a voltage finding, PTB-XL's
  VCLVH, not hypertrophy: their patterns *hide* the hypertrophy they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """Findings stated by any of the patterns (by language); ``hides``: findings whose mentions lying inside
    this entry's match are dropped (``voltage criteria for LVH`` is not LVH)."""

    findings: tuple[str, ...]
    patterns: dict[str, str]
    hides: tuple[str, ...] = field(default=())


_BEAT = r"(?:complex(?:es)?|contractions?|beats?|depolari[sz]ations?|extrasystoles?)"
_ECG = r"(?:ecg|ekg|electrocardiogram|tracing)"
_ELEV = r"(?:elevations?|elevated)"
_DEPR = r"(?:depressions?|depressed)"
_ST = r"\bst(?: segments?)?"
_ST_ADVERB = r"(?:(?:are|is) )?(?:(?:slightly|mildly|minimally|markedly|significantly|moderately) )?"
_NOT_AFTER_ST = r"(?<!st-)(?<!st )(?<!st & )(?<!st/)(?<!st und )"
_INCOMPLETE_DE = r"(?<!unvollstaendiger )(?<!inkompletter )(?<!unvollstaendigen )"
_DE_GRADE = r"\.? ?(?:grades|grad|gr\.)?"
_SV_VENTRICLE_EXTRA = r"(?:e|a|\(a\))? extra(?:systol\w*|slag)"

ENTRIES: tuple[Entry, ...] = (
    # rhythm
    Entry(("sinus_rhythm",), {"en": r"(?<!slow )(?<!rapid )(?<!fast )\bsinus rhythm",
                              "de": r"\bsinus ?rhythmus", "sv": r"\bsinus ?rytm"}),
    Entry(("sinus_brady",), {"en": r"\bsinus bradycardia|\bslow sinus rhythm",
                             "de": r"\bsinus ?bradykardie\b", "sv": r"\bsinus ?bradykardi\b"}),
    Entry(("sinus_tachy",), {"en": r"\bsinus tachycardia|\b(?:rapid|fast) sinus rhythm",
                             "de": r"\bsinus ?ta(?:ch|k)ykardie\b", "sv": r"\bsinus ?ta(?:k|ch)ykardi\b"}),
    Entry(("sinus_arrhythmia",), {"en": r"\bsinus arrhythmia", "de": r"\bsinus ?arrhythmie",
                                  "sv": r"\bsinus ?arr?ytmi"}),
    Entry(("afib",), {"en": r"\batrial fibrillation|\ba-?fib\b",
                      "de": r"\bvorhofflimmern|\babsolute arrhythmie|\barrhythmia absoluta|\btachyarrhythmia absoluta",
                      "sv": r"\bfoermaksflimmer"}),
    Entry(("aflutter",), {"en": r"\batrial (?:fibrillation ?/ ?)?flutter|\ba-?flutter\b",
                          "de": r"\bvorhofflattern|\bvorhofflimmern ?/ ?-?flattern",
                          "sv": r"\bfoermaksfladder|\bfoermaksflimmer ?/ ?-?fladder"}),
    Entry(("ectopic_atrial",), {"en": r"\bectopic atrial (?:rhythm|bradycardia|tachycardia)",
                                "de": r"\bektope[rn]? vorhof(?:rhythmus|tachykardie)",
                                "sv": r"\bektopisk foermaks(?:rytm|takykardi)"}),
    Entry(("junctional",), {"en": r"\bjunctional (?:rhythm|bradycardia|tachycardia|escape)",
                            "de": r"\b(?:av-?)?knoten(?:ersatz)?rhythmus|\bjunktionale[rn]? rhythmus",
                            "sv": r"\bnodal(?:rytm| rytm)"}),
    Entry(("svt",), {"en": r"\bsupraventricular tachycardia|\bsvt\b|\bpsvt\b|(?<!ectopic )\batrial tachycardia",
                     "de": r"\bsupraventrikulaere tachykardie", "sv": r"\bsupraventrikulaer ta(?:k|ch)ykardi"}),
    Entry(("vt",), {"en": r"(?<!supra)\bventricular tachycardia|\bv-?tach\b",
                    "de": r"\bventrikulaere tachykardie|\bkammertachykardie",
                    "sv": r"\bventrikulaer ta(?:k|ch)ykardi|\bkammartakykardi"}),
    Entry(("paced",), {"en": r"\bpaced\b|\bpacemaker|\bpacing\b|\bpacer\b",
                       "de": r"\bschrittmacher", "sv": r"\bpacemaker"}),
    # conduction
    Entry(("avb1",), {"en": r"\bfirst degree (?:av |atrioventricular |heart )?block|\bprolonged pr\b",
                      "de": rf"\bav[- ]?block (?:i|1){_DE_GRADE}\b(?!\.?i)|\bav[- ]?block ersten grades"
                            r"|\bpq[- ]?(?:zeit[- ]?)?verlaengerung|\bverlaengerte pq",
                      "sv": r"\bav[- ]?block (?:i|1)\b(?![i.])|\bpq[- ]?(?:tid )?foerlaengning|\bfoerlaengd pq"}),
    # "2:1 av block" after atrial flutter or tachycardia is a conduction ratio, not an AV block: not read
    Entry(("avb2",), {"en": r"\bsecond degree (?:av |atrioventricular |heart )?block|\bmobitz|\bwenckebach",
                      "de": rf"\bav[- ]?block (?:ii|2){_DE_GRADE}\b(?!\.?i)|\bav[- ]?block zweiten grades",
                      "sv": r"\bav[- ]?block (?:ii|2)\b(?!i)"}),
    Entry(("avb3",), {"en": r"\bthird degree (?:av |atrioventricular |heart )?block"
                            r"|\bcomplete (?:av|atrioventricular|heart) block",
                      "de": rf"\bav[- ]?block (?:iii|3){_DE_GRADE}|\b(?:totaler|kompletter) av[- ]?block",
                      "sv": r"\bav[- ]?block (?:iii|3)\b|\btotalt av[- ]?block"}),
    Entry(("lbbb",), {"en": r"(?<!incomplete )\bleft bundle branch block|(?<!incomplete )\bc?lbbb\b",
                      "de": rf"{_INCOMPLETE_DE}\blinksschenkelblock",
                      "sv": r"(?<!inkomplett )\bvaenster(?:sidigt)? skaenkelblock"}),
    Entry(("rbbb",), {"en": r"(?<!incomplete )\bright bundle branch block|(?<!incomplete )\bc?rbbb\b",
                      "de": rf"{_INCOMPLETE_DE}\brechtsschenkelblock",
                      "sv": r"(?<!inkomplett )\bhoeger(?:sidigt)? skaenkelblock"}),
    Entry(("incomplete_lbbb",), {"en": r"\bincomplete (?:left bundle branch block|lbbb\b)|\bilbbb\b",
                                 "de": r"\b(?:unvollstaendige[rn]?|inkomplette[rn]?) linksschenkelblock",
                                 "sv": r"\binkomplett vaenster(?:sidigt)? skaenkelblock"}),
    Entry(("incomplete_rbbb",), {"en": r"\bincomplete (?:right bundle branch block|rbbb\b)|\birbbb\b",
                                 "de": r"\b(?:unvollstaendige[rn]?|inkomplette[rn]?) rechtsschenkelblock",
                                 "sv": r"\binkomplett hoeger(?:sidigt)? skaenkelblock"}),
    Entry(("lafb",), {"en": r"\bleft anterior (?:fascicular block|hemiblock)|\blafb\b|\blahb\b",
                      "de": r"\blinks ?anteriore[rn]? (?:hemi|faszikel)block",
                      "sv": r"\bvaenster fraemre (?:hemi|fascikel)block"}),
    Entry(("lpfb",), {"en": r"\bleft posterior (?:fascicular block|hemiblock)|\blpfb\b|\blphb\b",
                      "de": r"\blinks ?posteriore[rn]? (?:hemi|faszikel)block",
                      "sv": r"\bvaenster bakre (?:hemi|fascikel)block"}),
    Entry(("ivcd",), {"en": r"\bintraventricular (?:conduction )?(?:delay|defect|disturbance|block)|\bivcd\b",
                      "de": r"\bintraventrikulaere[rn]? (?:block|leitungs(?:stoerung|verzoegerung))"
                            r"|\bintraventr\.? ?lei(?:s)?tungsstoerung",
                      "sv": r"\bospecifik(?:t)? (?:inkomplett )?skaenkelblock"
                            r"|\bintraventrikulaer (?:retlednings|lednings)stoerning"}),
    Entry(("wpw",), {"en": r"\bwolf{1,2}[- ]parkinson[- ]white|\bwpw\b|\bpre-?excitation",
                     "de": r"\bpraeexzitation", "sv": r"\bpreexcitation"}),
    Entry(("long_qt",), {"en": r"\b(?:prolonged|long) qtc?\b|\bqtc? (?:interval )?(?:prolongation|(?:is )?prolonged)",
                         "de": r"\bqtc?[- ]?(?:zeit[- ]?)?verlaengerung|\bverlaengerte[sn]? qt",
                         "sv": r"\bqtc?[- ]?(?:tids?[- ]?)?foerlaengning|\bfoerlaengd qt|\blang qt"}),
    # axis (see the module docstring for the German and Swedish axis types)
    Entry(("axis_left",), {"en": r"\bleft(?:ward)? axis(?: deviation)?|\blad\b",
                           "de": r"\bueberdrehte[rn]? links ?(?:typ|lage)",
                           "sv": r"\bextrem(?:t)? vaenster ?(?:el-?axel|staelld)"}),
    Entry(("axis_right",), {"en": r"\bright(?:ward)? axis(?: deviation)?|\brad\b",
                            "de": r"\b(?:ueberdrehte[rn]? )?rechts ?typ|\brechtslage",
                            "sv": r"\b(?:extrem(?:t)? )?hoeger ?(?:el-?axel|staelld)"}),
    Entry(("axis_normal",), {"en": r"\bnormal (?:qrs |electrical |frontal (?:plane )?)?axis",
                             "de": r"(?<!ueberdrehter )(?<!ueberdrehte )\blinks ?(?:typ|lage)\b|\blagetyp normal"
                                   r"|\bindiff(?:erenz)?\.? ?typ|\bnormal ?typ|\bsteil ?(?:typ|lage)|\bmittellage",
                             "sv": r"(?<!extrem )(?<!extremt )\bvaenster el-?axel|\bnormal el-?axel"}),
    Entry(("axis_extreme",), {"en": r"\b(?:extreme|northwest|indeterminate) (?:qrs )?axis",
                              "de": r"\bsagittal ?typ|\b(?:schwierig |nicht )?(?:un)?bestimmbare[rn]? (?:qrs-?)?achse",
                              "sv": r"\b(?:svar|o)bestaem(?:m)?bar el-?axel"}),
    # ST segment and T wave
    Entry(("st_elevation",), {"en": rf"{_ST} {_ST_ADVERB}{_ELEV}|\belevated st\b|\bstemi\b",
                              "de": r"\bst[- ]?(?:strecken)?[- ]?(?:hebung|erhebung|elevation)(?:en)?",
                              "sv": r"\bst[- ]?(?:hoejning|elevation)(?:ar)?"}),
    Entry(("st_depression",), {"en": rf"{_ST} {_ST_ADVERB}{_DEPR}|\bdepressed st\b",
                               "de": r"\bst[- ]?(?:strecken)?[- ]?senkung(?:en)?|\bst[- ]?t[- ]?senkung(?:en)?",
                               "sv": r"\bst(?:[- ]t)?[- ]?saenkning(?:ar)?"}),
    Entry(("st_elevation", "st_depression"),
          {"en": rf"{_ST} {_ST_ADVERB}(?:{_ELEV}|{_DEPR}) ?(?:or|and|/) ?(?:{_ELEV}|{_DEPR})"}),
    Entry(("st_t_abnormality",), {"en": r"\bst[- ]?t\b(?![- ]?(?:saenkning|senkung))"
                                        r"|\bst(?: segment)? (?:changes?|abnormalit(?:y|ies))",
                                  "de": r"\bst ?(?:&|und|/) ?t\b(?: ?-?(?:abnormal|veraenderung))"
                                        r"|\berregungsrueckbildungsstoerung"}),
    Entry(("t_inversion",), {"en": rf"{_NOT_AFTER_ST}\bt[- ]?waves? inversions?|\binverted t[- ]?waves?"
                                   rf"|{_NOT_AFTER_ST}\bt[- ]?waves? (?:are |is )?(?:[\w,]+ ){{0,8}}?inverted"
                                   r"|\bt inversions?",
                             "de": r"\bnegative[sn]? t\b|\bneg\.? t\b|\bt[- ]?negativierung"
                                   rf"|{_NOT_AFTER_ST}\bt[- ]?(?:wellen[- ]?)?neg(?:ativ)?\b",
                             "sv": r"\bnegativa? t\b|\binverterade? t\b|\bt[- ]?vagsinversion"}),
    Entry(("t_abnormality",), {"en": rf"{_NOT_AFTER_ST}\bt[- ]?waves? (?:abnormalit(?:y|ies)|changes?|flattening)"
                                     r"|\bflat(?:tened)? t[- ]?waves?|\blow(?: amplitude)? t[- ]?waves?"
                                     rf"|{_NOT_AFTER_ST}\bt[- ]?waves? (?:are |is )?(?:low|flat|flattened)\b",
                               "de": rf"{_NOT_AFTER_ST}\bt[- ]?abnormal|\babnormales t\b|\bflache[sn]? t\b"
                                     rf"|{_NOT_AFTER_ST}\bt[- ]?(?:wellen)?[- ]?veraenderung(?:en)?|\bt[- ]?abflachung",
                               "sv": rf"{_NOT_AFTER_ST}\bt[- ]?(?:vags)?foeraendring(?:ar)?|\bflata? t\b"}),
    Entry(("ischemia",), {"en": r"ischemi", "sv": r"\bmyokardaffektion"}),
    # voltage and hypertrophy
    Entry(("low_voltage",), {"en": r"\blow (?:qrs |limb lead |precordial )?voltages?|\blow voltage qrs",
                             "de": r"niederspannung|\bniedervoltage|\bniedrige (?:qrs-?)?amplituden",
                             "sv": r"\blaga (?:qrs[- ]?)?amplituder|\blag (?:qrs[- ]?)?spaenning|\blagvolt"}),
    Entry(("high_voltage",), {"en": r"\bhigh (?:qrs )?voltages?|\bvoltages? (?:are |is )?(?:very )?high\b"
                                    r"|\bvoltages? (?:[\w,()]+ ){0,6}?(?:at|near|above) (?:the )?upper limit"
                                    r"|\bvoltage criteria (?:\(qrs\) )?for(?: (?:left|right) ventricular hypertrophy"
                                    r"|(?: \w+)? (?:lvh|rvh)\b)?"
                                    r"|\bhigh (?:chest lead |limb lead |v lead |precordial )voltages?"
                                    r"|\bvoltages? suggests? (?:possible |probable )?(?:lvh\b|rvh\b|[lr]v hypertrophy"
                                    r"|(?:left|right) ventricular hypertrophy)",
                              "de": r"\bamplitudenkriterien (?:fuer|f\.) ?(?:links|rechts)?hypertrophie"
                                    r"|\bhohe (?:qrs-?)?amplituden|\bsokolow(?:-lyon)?(?:-index)? positiv",
                              "sv": r"\bamplitudkrit(?:erier|\.)? (?:foer )?(?:vaenster|hoeger) kammar\w*hypertrofi"},
          hides=("lvh", "rvh")),
    Entry(("lvh",), {"en": r"\bleft ventricular hypertrophy|\blvh\b|\blv hypertrophy",
                     "de": r"\blinks ?(?:ventrikulaere |herz)?hypertrophie",
                     "sv": r"\bvaenster kammar\w*hypertrofi"}),
    Entry(("rvh",), {"en": r"\bright ventricular hypertrophy|\brvh\b|\brv hypertrophy",
                     "de": r"\brechts ?(?:ventrikulaere |herz)?hypertrophie",
                     "sv": r"\bhoeger kammar\w*hypertrofi"}),
    Entry(("lae",), {"en": r"\bleft atrial (?:enlargement|abnormality|overload|hypertrophy)|\blae\b|\bp mitrale",
                     "de": r"\bp[- ]?sinistro\w*|\bp[- ]?mitrale|\bvorhofs?ueberlastung links"
                           r"|\blinksatriale[rn]? (?:ueberlastung|vergroesserung|belastung)",
                     "sv": r"\bvaenster foermaks(?:belastning|foerstoring|hypertrofi)"}),
    Entry(("rae",), {"en": r"\bright atrial (?:enlargement|abnormality|overload|hypertrophy)|\brae\b|\bp pulmonale",
                     "de": r"\bp[- ]?dextro\w*|\bp[- ]?pulmonale|\bvorhofs?ueberlastung rechts"
                           r"|\brechtsatriale[rn]? (?:ueberlastung|vergroesserung|belastung)",
                     "sv": r"\bhoeger foermaks(?:belastning|foerstoring|hypertrofi)"}),
    # ectopy
    Entry(("pvc",), {"en": rf"\b(?:premature ventricular|ventricular premature) {_BEAT}|\bpvcs?\b"
                           r"|\bventricular (?:extrasystoles?|ectopy|ectopics?|ectopic beats?)",
                     "de": r"\bventrikulaere extrasystol\w*|\bves\b|\bkammerextrasystol\w*",
                     "sv": rf"\bventrikulaer{_SV_VENTRICLE_EXTRA}|\bkammarextra(?:systol\w*|slag)"}),
    Entry(("pac",), {"en": rf"\b(?:premature (?:atrial|supraventricular)|(?:atrial|supraventricular) premature) {_BEAT}"
                           r"|\bpacs?\b"
                           r"|\b(?:atrial|supraventricular) (?:extrasystoles?|ectopy|ectopics?|ectopic beats?)",
                     "de": r"\bsupraventrikulaere extrasystol\w*|\bsves\b|\bvorhofextrasystol\w*",
                     "sv": rf"\bsupraventrikulaer{_SV_VENTRICLE_EXTRA}|\bfoermaksextra(?:systol\w*|slag)"}),
    Entry(("bigeminy",), {"en": r"\bbigemin(?:y|al)", "de": r"\bbigemin(?:us|ie)", "sv": r"\bbigemini"}),
    # summary statements; "otherwise normal" is normal (PTB-XL codes "sonst normales ekg" NORM)
    Entry(("normal_ecg",), {"en": rf"\bnormal {_ECG}|\bwithin normal limits|\bno abnormality detected"
                                  r"|\bno definite pathology",
                            "de": r"\bnormales ekg|\bekg normal\b",
                            "sv": r"\bnormalt ekg|\binget saekert patolog\w*"}),
    Entry(("borderline_ecg",), {"en": rf"\bborderline {_ECG}", "de": r"\bgrenzbefund|\bgrenzwertiges ekg",
                                "sv": r"\bgraensfall|\bgraensvaerdigt ekg"}),
    Entry(("abnormal_ecg",), {"en": rf"\babnormal {_ECG}",
                              "de": r"\bpathologisch\b|\bpath\.? ?ekg|\bpathologisches ekg|\babnormales ekg",
                              "sv": r"\bpatologiskt ekg|\bavvikande ekg"}),
)

#: Rate words: a mention like any other, but a stated number overrides them (see :mod:`meit.findings`).
RATE_ENTRIES: tuple[Entry, ...] = (
    Entry(("rate_brady",), {"en": r"\bbradycardi[ac]|\bslow (?:ventricular )?response|\bslow sinus rhythm",
                            "de": r"bradykard\w*|bradyarrhythmi\w*|\bbradycard\w*",
                            "sv": r"bradykardi\w*|\blag kammarfrekvens"}),
    Entry(("rate_tachy",), {"en": r"\btachycardi[ac]|\b(?:rapid|fast) (?:ventricular )?response|\brvr\b"
                                  r"|\b(?:rapid|fast) sinus rhythm",
                            "de": r"ta(?:ch|k)ykard\w*|tachyarrhythmi\w*|\btachycardie",
                            "sv": r"ta(?:k|ch)ykardi\w*|\bhoeg kammarfrekvens"}),
    Entry(("rate_normal",), {"en": r"\bcontrolled (?:ventricular )?response|\bnormal (?:heart |ventricular )?rate",
                             "de": r"\bnormofrequent\w*", "sv": r"\bnormofrekvent\w*"}),
)

#: Infarction mentions ("myocardial damage" included, in German, Swedish and English: PTB-XL codes those
#: statements with its MI/injury codes); the territory is read from nearby words with the roots below.
INFARCT = (r"\b(?:myocardial )?infarct(?:ion)?s?\b|\bmi\b|\bstemi\b|\b\w*infarkt\w*|\bmyocardial damage\b"
           r"|\bmyokard(?:schaden|schaedigung|skada|skador)\b")
TERRITORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("infarct_inferior", ("infer", "hinterwand", "diaphragm", "diafragm")),
    ("infarct_anterior", ("anter", "vorderwand", "framvaegg")),
    ("infarct_septal", ("sept",)),
    ("infarct_lateral", ("later", "seitenwand", "sidovaegg")),
    ("infarct_posterior", ("poster", "bakvaegg")),
)

#: Negation triggers before a mention (same clause, within the window).
NEGATION_BEFORE = {
    "en": r"no|not|without|absence of|absent|negative for|free of|ruled out|rules out|no longer",
    "de": r"kein(?:e|er|en|em|es)?|ohne|nicht|weder",
    "sv": r"ej|inte|inga|inget|ingen|utan",
}
#: Negations after a mention ("ST elevation is no longer present").
NEGATION_AFTER = {
    "en": r"absent|not (?:seen|present|identified|detected|noted)|no longer (?:present|seen)|resolved|ruled out",
    "de": r"nicht (?:mehr )?(?:nachweisbar|vorhanden|sichtbar)|ausgeschlossen|rueckgebildet|verschwunden",
    "sv": r"(?:ej|inte) (?:laengre )?(?:synlig|synliga|kvar|paavisbar)|foersvunn\w*|gatt tillbaka",
}
#: Phrases that contain a trigger but do not negate: hedges ("cannot be excluded", "nicht auszuschliessen",
#: "kan ej uteslutas"), "age not determinable", summary statements built on a negation.
PSEUDO_NEGATIONS = {
    "en": r"(?:cannot|can not|can't|could not|not) (?:be )?(?:rule[ds]? out|excluded?)|no (?:significant )?change"
          r"|not (?:only|necessarily)|no definite pathology",
    "de": r"nicht (?:sicher |mit sicherheit )?(?:auszuschlie(?:ss|s)en|ausgeschlossen)"
          r"|kann nicht ausgeschlossen werden|nicht (?:sicher )?bestimmbar",
    "sv": r"(?:kan )?(?:ej|inte) (?:saekert )?(?:uteslutas|uteslutet|bestaem(?:m)?bar)|inget saekert patolog\w*",
}
#: An explanation of a finding names a cause, not a finding: "this is most commonly due to ischaemic heart
#: disease" does not state ischaemia. Mentions after one (same clause, within the window) are not affirmed.
#: "This may be due to lv strain or ischaemia" is not one: it offers a cause of this tracing's change, a hedged
#: statement like "possible" (PTB-XL codes ISC_ with it in 6 of the 9 English development rows that hold it uncut).
EXPLANATIONS = (r"\b(?:this|these|which|that|it) (?:is|are|can be) (?:most |more )?"
                r"(?:commonly |often |usually |frequently |typically )?(?:due to|caused by|seen in|associated with)\b")
