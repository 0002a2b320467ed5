; Windows installer of Prime Studio (NSIS 3): installs the PyInstaller one-folder app, adds a
; Start-menu entry and an uninstaller listed under "Apps > Installed apps" (Add/Remove Programs).
;
;   python packaging\build.py                                   (-> dist\PrimeStudio\)
;   makensis /DVERSION=0.1.0 packaging\windows\prime-studio.nsi (-> dist\PrimeStudio-0.1.0-setup.exe)
;
; Silent use (CI, administrators): PrimeStudio-0.1.0-setup.exe /S [/D=C:\Path\Without\Quotes]
; and "C:\Program Files\Prime Studio\Uninstall.exe" /S. Installing a new version over an old one
; replaces the program files; the user's models and settings live in %APPDATA%\Prime Studio,
; which neither the installer nor the uninstaller touches.
;
; Defines: VERSION (required), APPDIR (the one-folder app, default ..\..\dist\PrimeStudio),
; OUTFILE (default ..\..\dist\PrimeStudio-VERSION-setup.exe). Relative paths are relative to
; this file's folder (makensis works from there).

Unicode true
!ifndef VERSION
  !error "pass the version: makensis /DVERSION=x.y.z prime-studio.nsi"
!endif
!ifndef APPDIR
  !define APPDIR "..\..\dist\PrimeStudio"
!endif
!ifndef OUTFILE
  !define OUTFILE "..\..\dist\PrimeStudio-${VERSION}-setup.exe"
!endif

!define APPNAME "Prime Studio"
!define EXE "PrimeStudio.exe"
!define PUBLISHER "Prime Studio developers"
!define REGKEY "Software\PrimeStudio"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\PrimeStudio"
!define ICON "..\icons\prime-studio.ico"

!include "MUI2.nsh"
!include "FileFunc.nsh"

Name "${APPNAME} ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${APPNAME}"
InstallDirRegKey HKLM "${REGKEY}" "InstallDir"
RequestExecutionLevel admin
SetCompressor /SOLID lzma
ManifestDPIAware true
BrandingText "${APPNAME} ${VERSION}"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APPNAME}"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APPNAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APPNAME} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "${PUBLISHER}"

Section "Prime Studio" SecMain
  SectionIn RO
  SetShellVarContext all
  ; An older version's program files go first, so none of them lingers next to the new ones.
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${EXE}"
  SetOutPath "$INSTDIR"
  File "${APPDIR}\${EXE}"
  File /r "${APPDIR}\_internal"
  WriteUninstaller "$INSTDIR\Uninstall.exe"
  CreateShortcut "$SMPROGRAMS\${APPNAME}.lnk" "$INSTDIR\${EXE}" "" "$INSTDIR\${EXE}" 0

  WriteRegStr HKLM "${REGKEY}" "InstallDir" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayName" "${APPNAME}"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTKEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\${EXE}"
  WriteRegStr HKLM "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTKEY}" "UninstallString" '"$INSTDIR\Uninstall.exe"'
  WriteRegStr HKLM "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\Uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKLM "${UNINSTKEY}" "EstimatedSize" "$0"
SectionEnd

Section "Uninstall"
  SetShellVarContext all
  Delete "$SMPROGRAMS\${APPNAME}.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${EXE}"
  Delete "$INSTDIR\Uninstall.exe"
  RMDir "$INSTDIR"  ; only when empty: never files the user put there
  DeleteRegKey HKLM "${UNINSTKEY}"
  DeleteRegKey HKLM "${REGKEY}"
SectionEnd
