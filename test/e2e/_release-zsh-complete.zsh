# Used by release-completion.test.ts: completes $COMP_LINE in an interactive zsh on a pty,
# with $COMP_SCRIPT loaded, and prints the candidates one a line (compadd is wrapped to print).
zmodload zsh/zpty || exit 1
zpty z zsh -f -i
zpty -w z 'PROMPT=""; RPROMPT=""; M=@@'
zpty -w z 'autoload -U compinit && compinit -u -D'
zpty -w z "source ${COMP_SCRIPT}"
zpty -w z 'compadd () { local -a hits; builtin compadd -A hits "$@"; local h; for h in $hits; do print -r -- "${M}${h}${M}"; done; builtin compadd "$@"; }'
zpty -w z 'comppostfuncs=( __done ); __done () { print -r -- "${M}DONE${M}"; }'
zpty -w z "${COMP_LINE}"$'\t'
local line out=""
integer i=0
while (( i++ < 500 )); do
  if zpty -r -t z line; then
    out+="$line"
    [[ $line == *'@@DONE@@'* ]] && break
  else
    sleep 0.01
  fi
done
zpty -d z
print -r -- "$out" | grep -o '@@[^@]*@@' | sed 's/^@@//; s/@@$//' | grep -v '^DONE$' | sort -u
